// The instance images of a DreamBooth run: every picture in a folder (PNG, JPEG or WebP told by content, upright
// after the EXIF orientation: PNGImage's ImageFolder and ImageFile; files that are not pictures are skipped and
// counted in one warning), each with its prompt (`NAME.txt` beside the image, or the run's instance prompt), resized
// so the shorter side is the training resolution (Lanczos, antialiased as Pillow), then cropped (centre or
// random) and optionally flipped per step. For latent models the VAE encodes each distinct crop once and
// the latents are cached; the cached value is the posterior mean × scaling factor (deterministic, so a
// cached latent never depends on the order it was first needed in).
import Autograd
import DiffusionModels
import Foundation
import PNGImage
import TensorCore

public enum CropMode: String, Codable, Sendable, CaseIterable {
    case center
    case random
}

/// How the instance prompt is formed.
public struct InstancePrompt: Codable, Equatable, Sendable {
    public var token: String
    public var className: String?
    public var style: Bool
    /// Replaces the generated prompt when set.
    public var override: String?

    public init(token: String, className: String? = nil, style: Bool = false, override: String? = nil) {
        self.token = token
        self.className = className
        self.style = style
        self.override = override
    }

    /// `a photo of sks dog`; `a photo of sks` without a class; `a picture in the style of sks` for a style.
    public var text: String {
        if let override { return override }
        if style { return "a picture in the style of \(token)" }
        return "a photo of \(token)" + (className.map { " \($0)" } ?? "")
    }

    /// The class prompt of prior preservation (`a photo of a dog`), nil without a class.
    public var classPrompt: String? {
        className.map { style ? "a picture of \(article($0)) \($0)" : "a photo of \(article($0)) \($0)" }
    }

    /// The training prompt of an image with caption `caption` (`NAME.txt`): the caption itself when it names
    /// the trigger word, else the caption with the trigger attached — `… in the style of sks` for a style,
    /// `…, sks` for a subject — so that every example teaches the word the adapter is invoked by.
    public func prompt(forCaption caption: String) -> String {
        let words = caption.lowercased().split { !$0.isLetter && !$0.isNumber }
        if words.contains(Substring(token.lowercased())) { return caption }
        return style ? "\(caption) in the style of \(token)" : "\(caption), \(token)"
    }

    private func article(_ word: String) -> String { "aeiou".contains(word.first ?? "x") ? "an" : "a" }
}

public struct DreamBoothExample: Sendable {
    public let file: String
    /// Resized so that it covers its bucket (without buckets: the shorter side equals the resolution), not yet cropped.
    public let image: Image
    public let prompt: String
    /// The size it is cropped to (nil: resolution × resolution).
    public var bucket: BucketSize? = nil
    /// Index of its folder in the dataset's `concepts`.
    public var concept: Int = 0
    /// Its size as read, before any resize.
    public var originalSize: BucketSize? = nil
}

/// Where a training crop came from, as SDXL's micro-conditioning reads it (diffusers' train_dreambooth_lora_sdxl.py:
/// the picture's size as read, the crop's top-left corner in the resized (and flipped) picture, the crop's size).
public struct SampleCrop: Equatable, Sendable {
    public var originalSize: BucketSize
    public var top: Int, left: Int
    public var targetSize: BucketSize

    /// `add_time_ids`: original (h, w), crop top-left (y, x), target (h, w).
    public var timeIds: [Float] {
        [originalSize.height, originalSize.width, top, left, targetSize.height, targetSize.width].map(Float.init)
    }
}

public final class DreamBoothDataset {
    public let examples: [DreamBoothExample]
    public let resolution: Int
    /// What the reader left out or changed that a user would want to know: skipped files, upscaled images.
    public let warnings: [String]
    /// The folders the examples come from (one for a plain folder; kohya's `N_words` folders).
    public let concepts: [DatasetConcept]
    /// The bucket table when buckets are on.
    public let buckets: BucketTable?
    var latentCache: [String: Tensor] = [:]
    var fitted: [String: Image] = [:]
    /// Where latents are also kept on disk (`--cache-latents-to-disk`), nil: memory only.
    public var latentCacheDirectory: URL?

    /// A dataset of prepared examples (see `init(concepts:…)`).
    init(examples: [DreamBoothExample], resolution: Int, warnings: [String], concepts: [DatasetConcept], buckets: BucketTable?) {
        self.examples = examples
        self.resolution = resolution
        self.warnings = warnings
        self.concepts = concepts
        self.buckets = buckets
    }

    /// Reads every image of `directory`; `prompt` is used for images without a caption file, and
    /// `caption` turns a caption file's text into the image's prompt (default: as it is).
    public init(directory: URL, prompt: String, resolution: Int, caption rule: (String) -> String = { $0 }) throws {
        guard resolution > 0 else { throw TrainingError.invalidSettings("--resolution must be positive") }
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw TrainingError.invalidData("image folder \(directory.path) does not exist or is not a folder")
        }
        let folder: ImageFolder
        do {
            folder = try ImageFolder.scan(directory.path, captionExtensions: ["txt"])
        } catch {
            throw TrainingError.invalidData("cannot list the image folder: \(error)")
        }
        var examples: [DreamBoothExample] = []
        var warnings = folder.subfolders.map { "skipping \(directory.appendingPathComponent($0).path): a folder" }
        if let skipped = folder.skippedSummary(ignoring: [PriorPreservation.cacheKeyFileName]) { warnings.append(skipped) }
        for name in folder.images {
            let path = directory.appendingPathComponent(name).path
            let decoded: Image
            do {
                decoded = try ImageFile.read(path: path).image
            } catch {
                throw TrainingError.invalidData("cannot read image \(error)")
            }
            let captionPath = directory.appendingPathComponent((name as NSString).deletingPathExtension + ".txt").path
            let caption = (try? String(contentsOfFile: captionPath, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let scale = Double(resolution) / Double(min(decoded.width, decoded.height))
            let w = max(resolution, Int((Double(decoded.width) * scale).rounded()))
            let h = max(resolution, Int((Double(decoded.height) * scale).rounded()))
            if min(decoded.width, decoded.height) < resolution {
                warnings.append("\(path) is \(decoded.width)×\(decoded.height), smaller than the training resolution "
                    + "\(resolution): it is upscaled \(String(format: "%.1f", scale))× and will look blurred")
            }
            let resized = (w, h) == (decoded.width, decoded.height) ? decoded : try decoded.resized(width: w, height: h)
            examples.append(DreamBoothExample(file: path, image: resized,
                                              prompt: caption.flatMap { $0.isEmpty ? nil : rule($0) } ?? prompt,
                                              originalSize: BucketSize(width: decoded.width, height: decoded.height)))
        }
        guard !examples.isEmpty else {
            throw TrainingError.invalidData("\(directory.path) has no images (PNG, JPEG or WebP)")
        }
        self.examples = examples
        self.resolution = resolution
        self.warnings = warnings
        concepts = [DatasetConcept(folderName: directory.lastPathComponent, path: directory.path, repeats: 1, words: "",
                                   isRegularization: false)]
        buckets = nil
    }

    /// Example `index` cropped (and maybe flipped), as the model's input x₀ [h, w, C]: pixels in [-1, 1]
    /// for pixel models, cached VAE latents for latent models.
    /// `bucket` (default: the example's own) is the size to crop to; an example of another size is first resized
    /// to cover it.
    public func sample(_ index: Int, crop: CropMode, flip: Bool, vae: AutoencoderKL?,
                       random: inout PhiloxRandom, bucket: BucketSize? = nil) throws -> Tensor {
        try croppedSample(index, crop: crop, flip: flip, vae: vae, random: &random, bucket: bucket).value
    }

    /// `sample`, with where the crop came from: SDXL's size conditioning of the example.
    public func croppedSample(_ index: Int, crop: CropMode, flip: Bool, vae: AutoencoderKL?,
                              random: inout PhiloxRandom, bucket: BucketSize? = nil) throws -> (value: Tensor, crop: SampleCrop) {
        let size = bucket ?? self.size(of: index)
        let image = try image(index, fittedTo: size), (w, h) = (size.width, size.height)
        let x = crop == .center ? (image.width - w) / 2 : Int(random.next() % UInt64(image.width - w + 1))
        let y = crop == .center ? (image.height - h) / 2 : Int(random.next() % UInt64(image.height - h + 1))
        let mirrored = flip && random.next() % 2 == 1
        let record = SampleCrop(originalSize: examples[index].originalSize ?? BucketSize(width: image.width, height: image.height),
                                top: y, left: mirrored ? image.width - w - x : x, targetSize: size)
        return (try croppedValue(index, image: image, x: x, y: y, size: size, mirrored: mirrored, vae: vae), record)
    }

    private func croppedValue(_ index: Int, image: Image, x: Int, y: Int, size: BucketSize, mirrored: Bool,
                              vae: AutoencoderKL?) throws -> Tensor {
        let (w, h) = (size.width, size.height)
        let key = "\(index) \(w)x\(h) \(x) \(y) \(mirrored)"
        if let cached = latentCache[key] { return cached }
        if let vae, let stored = try cachedLatent(key: key, index: index) { latentCache[key] = stored; return stored }
        var cropped = try image.cropped(x: x, y: y, width: w, height: h)
        if mirrored { cropped = cropped.flippedHorizontally() }
        var value = cropped.tensorHWC()
        if let vae {
            value = try vae.unetLatents(fromImage: try value.reshaped([1, h, w, 3]))
            value = try value.reshaped(Array(value.shape.dropFirst()))
            latentCache[key] = value
            try storeLatent(value, key: key, index: index)
        }
        return value
    }

    /// The crop size of example `index`.
    public func size(of index: Int) -> BucketSize {
        examples[index].bucket ?? BucketSize(width: resolution, height: resolution)
    }

    /// Example `index`'s image, resized to cover `size` when that is not its own crop size (kept).
    func image(_ index: Int, fittedTo size: BucketSize) throws -> Image {
        let image = examples[index].image
        if size == self.size(of: index) { return image }
        let key = "\(index) \(size.width)x\(size.height)"
        if let done = fitted[key] { return done }
        let cover = BucketTable.coverSize(width: image.width, height: image.height, bucket: size)
        let result = try image.resized(width: cover.width, height: cover.height)
        fitted[key] = result
        return result
    }
}
