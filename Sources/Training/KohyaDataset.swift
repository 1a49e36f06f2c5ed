// kohya's DreamBooth folder layout (sd-scripts library/config_util.py, train_util.py DreamBoothDataset):
// a dataset folder holds `N_token class/` folders (`10_sks dog/`), each a concept trained N times per epoch
// with its own trigger word and class; a regularization folder in the same layout (`1_dog/`) holds class
// images for prior preservation. A caption file `NAME.caption` or `NAME.txt` beside an image is its caption;
// with `--shuffle-caption` the comma-separated tags after the first `--keep-tokens` are shuffled per step.
//
// Where this reader differs from kohya's, on purpose: an image without a caption trains on this project's
// prompt for the concept (`a photo of sks dog`; `a picture in the style of pxl` for `3_pxl style`) rather than
// the bare folder words, and a caption that does not name the concept's trigger word gets it attached (InstancePrompt).
import Foundation
import PNGImage
import TensorCore

/// The dataset options of a run; nil in `StyleTrainingConfig.dataset` means a plain folder read as before.
public struct DatasetSettings: Codable, Equatable, Sendable {
    /// kohya-layout regularization folder (`--reg`): class images instead of generated ones.
    public var regDirectory: String?
    /// `--caption-extension`: nil reads `NAME.caption`, then `NAME.txt`.
    public var captionExtension: String?
    public var shuffleCaption = false
    public var keepTokens = 0
    /// nil: on when the images' aspect ratios differ; false with `--no-buckets`; true to force.
    public var buckets: Bool?
    public var bucketSettings = BucketSettings()
    /// `--cache-latents-to-disk`: VAE latents also kept under `<run>/latents/` (latent models).
    public var cacheLatentsToDisk = false

    public init() {}

    /// The caption extensions to look for, in order, with their dots.
    public var captionExtensions: [String] {
        guard let e = captionExtension else { return [".caption", ".txt"] }
        return [e.hasPrefix(".") ? e : "." + e]
    }
}

/// One `N_words` folder of a kohya-layout dataset.
public struct DatasetConcept: Codable, Equatable, Sendable {
    /// The folder's name as it is (`10_sks dog`), used as the key of kohya's metadata.
    public var folderName: String
    public var path: String
    public var repeats: Int
    /// The words after `N_` (`sks dog`).
    public var words: String
    public var isRegularization: Bool

    /// The first word (the trigger) and the rest (the class), as `--token` and `--class` would give them.
    public var token: String { String(words.split(separator: " ").first ?? "") }
    public var className: String? {
        let rest = words.split(separator: " ").dropFirst().joined(separator: " ")
        return rest.isEmpty ? nil : rest
    }
}

public enum KohyaLayout {
    /// The concept folders of `directory` when it is in kohya's layout (at least one `N_words` subfolder and
    /// no image files beside them), else nil. Subfolders without a number are skipped, as kohya does, and
    /// listed in `skipped`.
    public static func concepts(in directory: URL, regularization: Bool = false) throws -> (concepts: [DatasetConcept], skipped: [String])? {
        let fm = FileManager.default
        let names = try fm.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix(".") }.sorted()
        var concepts: [DatasetConcept] = [], skipped: [String] = [], hasImages = false
        for name in names {
            let path = directory.appendingPathComponent(name).path
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else { continue }
            guard isDir.boolValue else {
                if ImageFolder.isPicture(name: name, path: path) { hasImages = true }
                continue
            }
            guard let parsed = parseFolderName(name) else { skipped.append(path); continue }
            concepts.append(DatasetConcept(folderName: name, path: path, repeats: parsed.repeats, words: parsed.words,
                                           isRegularization: regularization))
        }
        if concepts.isEmpty || hasImages { return nil }
        return (concepts, skipped)
    }

    /// `10_sks dog` → (10, "sks dog"); nil when the name does not start with a number and `_`.
    public static func parseFolderName(_ name: String) -> (repeats: Int, words: String)? {
        guard let underscore = name.firstIndex(of: "_"), let n = Int(name[..<underscore]) else { return nil }
        return (n, name[name.index(after: underscore)...].trimmingCharacters(in: .whitespaces))
    }
}

/// Training images and their captions (pictures are told by content: PNGImage's ImageFolder and ImageFile).
public enum TrainingImageFiles {
    /// Decodes a training image (PNG, JPEG or WebP, EXIF orientation applied).
    public static func decode(path: String) throws -> Image {
        do {
            return try ImageFile.read(path: path).image
        } catch let error as ImageFileError {
            throw TrainingError.invalidData("\(error)")
        } catch {
            throw TrainingError.invalidData("cannot read image \(path): \(error)")
        }
    }

    /// The caption of image `path`: the first existing `STEM + extension` (first line, trimmed), nil when none
    /// exists or it is empty.
    public static func caption(forImage path: String, extensions: [String]) throws -> String? {
        let stem = (path as NSString).deletingPathExtension
        for ext in extensions {
            let captionPath = stem + ext
            guard FileManager.default.fileExists(atPath: captionPath) else { continue }
            guard let text = try? String(contentsOfFile: captionPath, encoding: .utf8) else {
                throw TrainingError.invalidData("caption file \(captionPath) is not UTF-8 text")
            }
            let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.isEmpty ? nil : trimmed
        }
        return nil
    }
}

/// kohya's process_caption for `--shuffle-caption`/`--keep-tokens`: the caption split at commas, the
/// first `keepTokens` tags kept in place, the others shuffled (Fisher–Yates with the run's stream), joined
/// with ", ".
public func shuffledCaption(_ caption: String, keepTokens: Int, random: inout PhiloxRandom) -> String {
    let tags = caption.trimmingCharacters(in: .whitespaces).split(separator: ",", omittingEmptySubsequences: false)
        .map { $0.trimmingCharacters(in: .whitespaces) }
    let keep = min(max(keepTokens, 0), tags.count)
    var flex = Array(tags[keep...])
    if flex.count > 1 {
        for i in stride(from: flex.count - 1, to: 0, by: -1) {
            let j = Int(random.next() % UInt64(i + 1))
            flex.swapAt(i, j)
        }
    }
    return (Array(tags[..<keep]) + flex).joined(separator: ", ")
}

/// How a concept's images get their prompts: the prompt of an image without a caption, and the rule that
/// turns a caption into a prompt.
public struct ConceptPrompt {
    public var prompt: String
    public var rule: (String) -> String

    public init(prompt: String, rule: @escaping (String) -> String = { $0 }) {
        self.prompt = prompt
        self.rule = rule
    }
}

extension DreamBoothDataset {
    /// Reads the images of `concepts` (kohya's folders, or one plain folder), each with its caption
    /// (`extensions` in order) or its concept's prompt. With buckets (`useBuckets` true, or nil and the
    /// images' aspect ratios differ) every image is resized to cover its bucket from `table`; without, the
    /// shorter side becomes `resolution` as the plain reader does. Files that are not images are skipped and
    /// counted in one warning.
    public convenience init(concepts: [DatasetConcept], prompts: (DatasetConcept) -> ConceptPrompt, resolution: Int,
                            table: () throws -> BucketTable, useBuckets: Bool?, captionExtensions: [String]) throws {
        guard resolution > 0 else { throw TrainingError.invalidSettings("--resolution must be positive") }
        var (decoded, warnings) = try Self.readImages(concepts: concepts, prompts: prompts, captionExtensions: captionExtensions)
        let aspects = Set(decoded.map { BucketSize(width: $0.image.width / gcd($0.image.width, $0.image.height),
                                                   height: $0.image.height / gcd($0.image.width, $0.image.height)) })
        let bucketTable = (useBuckets ?? (aspects.count > 1)) ? try table() : nil
        var examples: [DreamBoothExample] = []
        for d in decoded {
            let (w, h) = (d.image.width, d.image.height)
            let target: BucketSize, bucket: BucketSize?
            if let bucketTable {
                let choice = bucketTable.select(width: w, height: h)
                guard choice.bucket.width > 0, choice.bucket.height > 0 else {
                    throw TrainingError.invalidData("\(d.file) is \(w)×\(h), smaller than the bucket stride \(bucketTable.stride): "
                        + "it cannot be trained with --bucket-no-upscale")
                }
                (target, bucket) = (choice.resized, choice.bucket)
            } else {   // the plain reader's square-crop resize: the shorter side becomes the resolution
                let scale = Double(resolution) / Double(min(w, h))
                target = BucketSize(width: max(resolution, Int((Double(w) * scale).rounded())),
                                    height: max(resolution, Int((Double(h) * scale).rounded())))
                bucket = nil
            }
            if target.width > w || target.height > h {
                warnings.append("\(d.file) is \(w)×\(h), smaller than its training size \((bucket ?? target).description): it is "
                    + "upscaled \(String(format: "%.1f", Double(target.width) / Double(w)))× and will look blurred")
            }
            let resized = (target.width, target.height) == (w, h) ? d.image : try d.image.resized(width: target.width, height: target.height)
            examples.append(DreamBoothExample(file: d.file, image: resized, prompt: d.prompt, bucket: bucket, concept: d.concept,
                                              originalSize: BucketSize(width: w, height: h)))
        }
        self.init(examples: examples, resolution: resolution, warnings: warnings, concepts: concepts, buckets: bucketTable)
    }

    /// Every image of every concept folder (sorted by name) with its prompt; warnings for empty folders and
    /// one line counting the files that are neither images nor captions.
    private static func readImages(concepts: [DatasetConcept], prompts: (DatasetConcept) -> ConceptPrompt,
                                   captionExtensions: [String])
        throws -> ([(file: String, image: Image, concept: Int, prompt: String)], [String]) {
        var decoded: [(file: String, image: Image, concept: Int, prompt: String)] = []
        var warnings: [String] = []
        let captionExts = captionExtensions.map { String($0.drop { $0 == "." }) } + ImageFolder.defaultCaptionExtensions
        for (c, concept) in concepts.enumerated() {
            guard concept.repeats >= 1 else {
                warnings.append("skipping \(concept.path): \(concept.repeats) repeats")
                continue
            }
            let folder = try ImageFolder.scan(concept.path, captionExtensions: captionExts)
            if let line = folder.skippedSummary() { warnings.append(line) }
            let shaping = prompts(concept)
            var count = 0
            for name in folder.images {
                let path = (concept.path as NSString).appendingPathComponent(name)
                let image = try TrainingImageFiles.decode(path: path)
                let caption = try TrainingImageFiles.caption(forImage: path, extensions: captionExtensions)
                decoded.append((path, image, c, caption.map(shaping.rule) ?? shaping.prompt))
                count += 1
            }
            if count == 0 { warnings.append("\(concept.path) has no images") }
        }
        guard !decoded.isEmpty else {
            throw TrainingError.invalidData("\(concepts.map(\.path).joined(separator: ", ")) has no images (PNG, JPEG or WebP)")
        }
        return (decoded, warnings)
    }

    /// Example indices, each repeated as often as its concept's repeats (a uniform draw from it is kohya's
    /// epoch order in expectation); `bucket` restricts them to one crop size.
    public func drawTable(bucket: BucketSize? = nil) -> [Int] {
        examples.indices.flatMap { i -> [Int] in
            guard bucket == nil || size(of: i) == bucket else { return [] }
            return Array(repeating: i, count: max(1, concepts[examples[i].concept].repeats))
        }
    }

    /// Images per bucket with repeats, in size order (kohya's bucket table).
    public var bucketCounts: [(size: BucketSize, count: Int)] {
        var counts: [BucketSize: Int] = [:]
        for i in examples.indices { counts[size(of: i), default: 0] += max(1, concepts[examples[i].concept].repeats) }
        return counts.keys.sorted().map { ($0, counts[$0]!) }
    }

    /// kohya's mean_img_ar_error: mean |bucket aspect − image aspect| over the images (without repeats); nil
    /// without buckets.
    public var meanAspectError: Double? {
        guard buckets != nil else { return nil }
        let errors = examples.compactMap { e -> Double? in
            guard let o = e.originalSize, let b = e.bucket else { return nil }
            return abs(Double(b.width) / Double(b.height) - Double(o.width) / Double(o.height))
        }
        return errors.isEmpty ? 0 : errors.reduce(0, +) / Double(errors.count)
    }
}

private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? max(a, 1) : gcd(b, a % b) }

/// Draws the rows of a micro-batch: the first instance row from all examples weighted by their folders'
/// repeats, the other rows from the examples of the same bucket, class rows from the class images of that
/// bucket (all class images when none is in it: they are fitted to the bucket). With one bucket and no
/// repeats this draws exactly what `PriorPreservation.composeBatch` draws.
public struct BatchSampler {
    let sizes: [BucketSize]
    let instanceDraw: [Int]
    let instancePools: [BucketSize: [Int]]
    let classDraw: [Int]
    let classPools: [BucketSize: [Int]]

    /// `trainingIndices`: the instance examples to draw from (nil: all; a validation split holds some out).
    public init(instances: DreamBoothDataset, classes: DreamBoothDataset?, trainingIndices: [Int]? = nil) {
        let sizes = instances.examples.indices.map(instances.size(of:))
        self.sizes = sizes
        let allowed = trainingIndices.map(Set.init)
        let kept = { (table: [Int]) -> [Int] in allowed.map { a in table.filter(a.contains) } ?? table }
        let draw = kept(instances.drawTable())
        instanceDraw = draw
        var pools: [BucketSize: [Int]] = [:]
        for size in Set(draw.map { sizes[$0] }) { pools[size] = kept(instances.drawTable(bucket: size)) }
        instancePools = pools
        classDraw = classes?.drawTable() ?? []
        var classPools: [BucketSize: [Int]] = [:]
        if let classes {
            for size in Set(classes.examples.indices.map(classes.size(of:))) { classPools[size] = classes.drawTable(bucket: size) }
        }
        self.classPools = classPools
    }

    public func rows(batch: Int, priorWeight: Float, random: inout PhiloxRandom) -> [BatchRow] {
        let first = instanceDraw[Int(random.next() % UInt64(instanceDraw.count))]
        let size = sizes[first], pool = instancePools[size]!
        var rows = [BatchRow(isClass: false, index: first, weight: 1 / Float(batch), bucket: size)]
        for _ in 1..<max(batch, 1) {
            rows.append(BatchRow(isClass: false, index: pool[Int(random.next() % UInt64(pool.count))], weight: 1 / Float(batch),
                                 bucket: size))
        }
        if !classDraw.isEmpty {
            let classPool = classPools[size] ?? classDraw
            for _ in 0..<batch {
                rows.append(BatchRow(isClass: true, index: classPool[Int(random.next() % UInt64(classPool.count))],
                                     weight: priorWeight / Float(batch), bucket: size))
            }
        }
        return rows
    }
}

extension StyleTrainer {
    /// The instance images (kohya's folders or one plain folder) and the class images (`--reg` folders, or
    /// the generated folder `classImages`) of a run with dataset settings.
    public static func readDataset(config: StyleTrainingConfig, settings: DatasetSettings, resolution: Int, stride: Int,
                            classImages: URL?) throws -> (DreamBoothDataset, DreamBoothDataset?) {
        let root = URL(fileURLWithPath: config.imagesDirectory)
        let base = config.prompt
        let concepts = try KohyaLayout.concepts(in: root)?.concepts
            ?? [DatasetConcept(folderName: root.lastPathComponent, path: root.path, repeats: 1,
                               words: [base.token, base.className].compactMap { $0 }.joined(separator: " "), isRegularization: false)]
        let kohya = concepts.count > 1 || concepts.first?.path != root.path
        func prompts(_ c: DatasetConcept) -> ConceptPrompt {
            // a `N_token style` folder is a style concept (`a picture in the style of token`)
            let p = kohya ? InstancePrompt(token: c.token, className: c.className == "style" ? nil : c.className,
                                           style: base.style || c.className == "style", override: base.override) : base
            return ConceptPrompt(prompt: p.text, rule: p.override == nil ? p.prompt(forCaption:) : { $0 })
        }
        let table = { try BucketTable(resolution: resolution, stride: stride, settings: settings.bucketSettings) }
        let instances = try DreamBoothDataset(concepts: concepts, prompts: prompts, resolution: resolution, table: table,
                                              useBuckets: settings.buckets, captionExtensions: settings.captionExtensions)
        var classes: DreamBoothDataset?
        if let reg = settings.regDirectory, config.prior {
            let folder = URL(fileURLWithPath: reg)
            let regConcepts = try KohyaLayout.concepts(in: folder, regularization: true)?.concepts
                ?? [DatasetConcept(folderName: folder.lastPathComponent, path: folder.path, repeats: 1,
                                   words: base.className ?? "", isRegularization: true)]
            func classPrompt(_ c: DatasetConcept) -> ConceptPrompt {
                let noun = c.isRegularization && c.path == folder.path ? base.className : c.words
                return ConceptPrompt(prompt: InstancePrompt(token: "", className: noun, style: base.style).classPrompt ?? "")
            }
            classes = try DreamBoothDataset(concepts: regConcepts, prompts: classPrompt, resolution: resolution, table: table,
                                            useBuckets: instances.buckets != nil, captionExtensions: settings.captionExtensions)
        } else if let classImages {
            classes = try DreamBoothDataset(directory: classImages, prompt: base.classPrompt ?? "", resolution: resolution)
        }
        return (instances, classes)
    }
}
