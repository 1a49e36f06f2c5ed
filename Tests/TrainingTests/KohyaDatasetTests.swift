// kohya's folder layout, captions, buckets in the dataset and the batch sampler, the latent disk cache, the
// dataset preview and kohya's metadata in the adapter, on temporary folders of generated PNGs.
import Foundation
import PNGImage
import Pipeline
import SafeTensors
import TensorCore
import TestSupport
import XCTest
@testable import Training

final class KohyaDatasetTests: XCTestCase {
    /// A PNG of `width` × `height` with a horizontal ramp (so crops differ), at `folder/name`.
    private func png(_ folder: URL, _ name: String, _ width: Int, _ height: Int, shade: UInt8 = 0) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width { pixels += [UInt8(x * 255 / max(width - 1, 1)), UInt8(y * 255 / max(height - 1, 1)), shade] }
        }
        try PNG.write(try Image(width: width, height: height, pixels: pixels), to: folder.appendingPathComponent(name).path)
    }

    private func text(_ folder: URL, _ name: String, _ content: String) throws {
        try content.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    /// `10_sks dog/` (a.png with a .caption, b.png with a .txt, a stray .npz), `3_pxl style/` (c.png) and an
    /// unnumbered folder.
    private func kohyaFolder() throws -> URL {
        let root = try temporaryDirectory("kohya")
        let dog = root.appendingPathComponent("10_sks dog"), style = root.appendingPathComponent("3_pxl style")
        try png(dog, "a.png", 32, 32)
        try text(dog, "a.caption", "sks dog, on grass, red collar\nsecond line")
        try png(dog, "b.png", 32, 32, shade: 90)
        try text(dog, "b.txt", "a dog on a sofa")
        try text(dog, "b.npz", "not an image")
        try png(style, "c.png", 32, 32, shade: 200)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("notes"), withIntermediateDirectories: true)
        return root
    }

    private func config(_ root: URL, settings: DatasetSettings = DatasetSettings()) -> StyleTrainingConfig {
        var c = StyleTrainingConfig(imagesDirectory: root.path, pipeline: TestPaths.pipelineFixture("tiny-pixel"),
                                    prompt: InstancePrompt(token: "sks", className: "dog"))
        c.dataset = settings
        c.prior = false
        c.loop.steps = 2
        c.loop.saveEvery = 0
        return c
    }

    func testFolderLayoutGivesConceptsPromptsAndRepeats() throws {
        let root = try kohyaFolder()
        let found = try XCTUnwrap(try KohyaLayout.concepts(in: root))
        XCTAssertEqual(found.concepts.map(\.folderName), ["10_sks dog", "3_pxl style"])
        XCTAssertEqual(found.concepts.map(\.repeats), [10, 3])
        XCTAssertEqual(found.concepts.map(\.token), ["sks", "pxl"])
        XCTAssertEqual(found.concepts.map(\.className), ["dog", "style"])
        XCTAssertEqual(found.skipped.map { ($0 as NSString).lastPathComponent }, ["notes"])
        XCTAssertNil(KohyaLayout.parseFolderName("notes"))
        XCTAssertEqual(KohyaLayout.parseFolderName("2_my_token thing")?.words, "my_token thing")
        XCTAssertNil(try KohyaLayout.concepts(in: URL(fileURLWithPath: TestPaths.repository("images"))))

        let (data, classes) = try StyleTrainer.readDataset(config: config(root), settings: DatasetSettings(), resolution: 16,
                                                           stride: 2, classImages: nil)
        XCTAssertNil(classes)
        XCTAssertEqual(data.examples.map(\.prompt), ["sks dog, on grass, red collar", "a dog on a sofa, sks", "a picture in the style of pxl"])
        XCTAssertEqual(data.examples.map(\.concept), [0, 0, 1])
        XCTAssertEqual(data.drawTable().count, 10 * 2 + 3)
        XCTAssertTrue(data.warnings.contains { $0.hasPrefix("skipped 1 file that is not an image in ") && $0.hasSuffix("10_sks dog: b.npz") },
                      "\(data.warnings)")
        XCTAssertNil(data.buckets, "one aspect ratio: no buckets")

        var onlyTxt = DatasetSettings()
        onlyTxt.captionExtension = ".txt"
        let (txt, _) = try StyleTrainer.readDataset(config: config(root, settings: onlyTxt), settings: onlyTxt, resolution: 16,
                                                    stride: 2, classImages: nil)
        XCTAssertEqual(txt.examples[0].prompt, "a photo of sks dog")
    }

    func testShuffleCaptionKeepsTheLeadingTags() {
        var random = PhiloxRandom(seed: 7)
        var orders: Set<String> = []
        for _ in 0..<20 {
            let s = shuffledCaption("sks dog, a, b, c, d", keepTokens: 1, random: &random)
            XCTAssertTrue(s.hasPrefix("sks dog, "), s)
            XCTAssertEqual(Set(s.components(separatedBy: ", ")), ["sks dog", "a", "b", "c", "d"])
            orders.insert(s)
        }
        XCTAssertGreaterThan(orders.count, 5)
        XCTAssertEqual(shuffledCaption("a photo of sks dog", keepTokens: 0, random: &random), "a photo of sks dog")
    }

    func testMixedAspectsGetBucketsAndEveryBatchIsOneBucket() throws {
        let folder = try temporaryDirectory("mixed")
        try png(folder, "landscape.png", 48, 32)
        try png(folder, "portrait.png", 30, 50)
        try png(folder, "square.png", 40, 40)
        let concept = DatasetConcept(folderName: "mixed", path: folder.path, repeats: 1, words: "sks", isRegularization: false)
        let table = { try BucketTable(resolution: 16, stride: 4) }
        let data = try DreamBoothDataset(concepts: [concept], prompts: { _ in ConceptPrompt(prompt: "p") }, resolution: 16,
                                         table: table, useBuckets: nil, captionExtensions: [".txt"])
        XCTAssertNotNil(data.buckets)
        let expected = data.examples.map { e in try! table().select(width: e.originalSize!.width, height: e.originalSize!.height) }
        XCTAssertEqual(data.examples.map(\.bucket), expected.map(\.bucket))
        XCTAssertEqual(Set(data.examples.compactMap(\.bucket)).count, 3)
        for (i, e) in data.examples.enumerated() {
            XCTAssertEqual([e.image.width, e.image.height], [expected[i].resized.width, expected[i].resized.height])
            var random = PhiloxRandom(seed: 1)
            let x = try data.sample(i, crop: .random, flip: true, vae: nil, random: &random)
            XCTAssertEqual(x.shape, [e.bucket!.height, e.bucket!.width, 3])
        }
        XCTAssertGreaterThan(data.meanAspectError ?? 0, 0)
        let sampler = BatchSampler(instances: data, classes: nil)
        var random = PhiloxRandom(seed: 3)
        var seen: Set<BucketSize> = []
        for _ in 0..<60 {
            let rows = sampler.rows(batch: 3, priorWeight: 1, random: &random)
            XCTAssertEqual(rows.count, 3)
            XCTAssertEqual(Set(rows.map { data.size(of: $0.index) }).count, 1, "a batch mixes buckets")
            seen.insert(rows[0].bucket!)
        }
        XCTAssertEqual(seen.count, 3)
        // --no-buckets: square crops of the resolution
        let square = try DreamBoothDataset(concepts: [concept], prompts: { _ in ConceptPrompt(prompt: "p") }, resolution: 16,
                                           table: table, useBuckets: false, captionExtensions: [".txt"])
        XCTAssertNil(square.buckets)
        XCTAssertTrue(square.examples.indices.allSatisfy { square.size(of: $0) == BucketSize(width: 16, height: 16) })
        // class images of another size are fitted to the batch's bucket
        let classes = try DreamBoothDataset(concepts: [concept], prompts: { _ in ConceptPrompt(prompt: "c") }, resolution: 16,
                                            table: table, useBuckets: false, captionExtensions: [".txt"])
        let withClasses = BatchSampler(instances: data, classes: classes)
        let rows = withClasses.rows(batch: 2, priorWeight: 0.5, random: &random)
        XCTAssertEqual(rows.map(\.isClass), [false, false, true, true])
        let bucket = rows[0].bucket!
        let classRow = try classes.sample(rows[2].index, crop: .center, flip: false, vae: nil, random: &random, bucket: bucket)
        XCTAssertEqual(classRow.shape, [bucket.height, bucket.width, 3])
    }

    func testPlainFolderReadsAndDrawsAsBefore() throws {
        let images = URL(fileURLWithPath: TestPaths.repository("images"))
        let old = try DreamBoothDataset(directory: images, prompt: "a photo of sks dog", resolution: 24)
        let concept = DatasetConcept(folderName: "images", path: images.path, repeats: 1, words: "sks dog", isRegularization: false)
        let new = try DreamBoothDataset(concepts: [concept], prompts: { _ in ConceptPrompt(prompt: "a photo of sks dog") },
                                        resolution: 24, table: { try BucketTable(resolution: 24, stride: 4) }, useBuckets: nil,
                                        captionExtensions: [".caption", ".txt"])
        XCTAssertNil(new.buckets)
        XCTAssertEqual(new.examples.map(\.image), old.examples.map(\.image))
        XCTAssertEqual(new.examples.map(\.prompt), old.examples.map(\.prompt))
        let sampler = BatchSampler(instances: new, classes: old)
        var a = PhiloxRandom(seed: 11), b = PhiloxRandom(seed: 11)
        for _ in 0..<50 {
            let rows = sampler.rows(batch: 2, priorWeight: 0.7, random: &a)
            let before = PriorPreservation.composeBatch(batch: 2, instanceCount: old.examples.count, classCount: old.examples.count,
                                                        priorWeight: 0.7, random: &b)
            XCTAssertEqual(rows.map { BatchRow(isClass: $0.isClass, index: $0.index, weight: $0.weight) }, before)
        }
    }

    func testRegFolderTrainingWritesKohyaMetadata() throws {
        let root = try kohyaFolder()
        try png(root.appendingPathComponent("10_sks dog"), "wide.png", 48, 32)
        let reg = try temporaryDirectory("reg")
        try png(reg.appendingPathComponent("1_dog"), "r0.png", 32, 32, shade: 30)
        try png(reg.appendingPathComponent("1_dog"), "r1.png", 32, 48, shade: 60)
        var settings = DatasetSettings()
        settings.regDirectory = reg.path
        settings.shuffleCaption = true
        settings.keepTokens = 1
        var c = config(root, settings: settings)
        c.prior = true
        c.batch = 2
        let run = try temporaryDirectory("run")
        let t = try StyleTrainer(config: c, model: try StableDiffusionModel(path: c.pipeline), runDirectory: run, classImages: nil)
        XCTAssertEqual(t.classes?.examples.map(\.prompt), ["a photo of a dog", "a photo of a dog"])
        XCTAssertNotNil(t.instances.buckets)
        XCTAssertEqual(try t.loop.run(), .finished)
        let path = run.appendingPathComponent("sks.safetensors").path
        try t.writeAdapter(to: path)
        let meta = try SafeTensorsFile(path: path).metadata
        XCTAssertEqual(meta["ss_dataset_dirs"], #"{"10_sks dog": {"n_repeats": 10, "img_count": 3}, "3_pxl style": {"n_repeats": 3, "img_count": 1}}"#)
        XCTAssertEqual(meta["ss_reg_dataset_dirs"], #"{"1_dog": {"n_repeats": 1, "img_count": 2}}"#)
        XCTAssertEqual(meta["ss_num_train_images"], "33")
        XCTAssertEqual(meta["ss_num_reg_images"], "2")
        XCTAssertTrue(meta["ss_optimizer"]?.hasPrefix("torch.optim.adamw.AdamW") ?? false, "\(meta)")
        XCTAssertEqual(meta["ss_caption_extension"], ".caption")
        XCTAssertEqual(meta["ss_enable_bucket"], "True")
        XCTAssertEqual(meta["ss_shuffle_caption"], "True")
        XCTAssertEqual(meta["ss_keep_tokens"], "1")
        let tags = try XCTUnwrap(meta["ss_tag_frequency"])
        XCTAssertTrue(tags.hasPrefix(#"{"10_sks dog": {"sks dog": 1, "on grass": 1, "red collar": 1, "a dog on a sofa": 1, "sks": 1, "#), tags)
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(meta["ss_bucket_info"]).utf8)) as? [String: Any])
        let buckets = try XCTUnwrap(info["buckets"] as? [String: [String: Any]])
        let counts = buckets.values.map { $0["count"] as! Int }.reduce(0, +)
        XCTAssertEqual(counts, 33 + 2)
        XCTAssertNotNil(buckets["0"]?["resolution"] as? [Int])
        XCTAssertNotNil(info["mean_img_ar_error"] as? Double)
        XCTAssertEqual(PythonJSON.object([("é\"", .double(0.5))]).text, #"{"\u00e9\"": 0.5}"#)
    }

    func testPreviewWritesEveryPreparedImageAndASheet() throws {
        let root = try kohyaFolder()
        try png(root.appendingPathComponent("3_pxl style"), "tall.png", 20, 40)
        let (data, _) = try StyleTrainer.readDataset(config: config(root), settings: DatasetSettings(), resolution: 16,
                                                     stride: 4, classImages: nil)
        let run = try temporaryDirectory("preview")
        XCTAssertEqual(try DatasetPreview.write(instances: data, classes: nil, to: run), 4)
        let tall = try PNG.read(path: run.appendingPathComponent("dataset/3_pxl style/tall.png").path).image
        let bucket = data.size(of: 3)
        XCTAssertEqual([tall.width, tall.height], [bucket.width, bucket.height])
        XCTAssertLessThan(tall.width, tall.height)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("dataset/10_sks dog/a.png").path))
        let sheet = try PNG.read(path: run.appendingPathComponent("dataset.png").path).image
        XCTAssertGreaterThan(sheet.width, 4 * 16)
    }

    func testLatentsAreCachedOnDiskAndReused() throws {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        let vae = try XCTUnwrap(model.vae)
        let folder = try temporaryDirectory("latent-images")
        try png(folder, "a.png", 40, 32)
        let cache = try temporaryDirectory("latents")
        let concept = DatasetConcept(folderName: "x", path: folder.path, repeats: 1, words: "sks", isRegularization: false)
        func read() throws -> DreamBoothDataset {
            let d = try DreamBoothDataset(concepts: [concept], prompts: { _ in ConceptPrompt(prompt: "p") }, resolution: 32,
                                          table: { try BucketTable(resolution: 32, stride: 8) }, useBuckets: true,
                                          captionExtensions: [".txt"])
            d.latentCacheDirectory = cache
            return d
        }
        var random = PhiloxRandom(seed: 0)
        let first = try read().sample(0, crop: .center, flip: false, vae: vae, random: &random)
        let files = try FileManager.default.contentsOfDirectory(atPath: cache.path)
        XCTAssertEqual(files.count, 1)
        // A new dataset (a resumed run) reads the stored latent instead of encoding: the same values.
        let again = try read().sample(0, crop: .center, flip: false, vae: vae, random: &random)
        XCTAssertEqual(again.shape, first.shape)
        XCTAssertEqual(again.scalars, first.scalars)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.path).count, 1)
    }

    func testResumedLatentRunReusesTheLatentsOnDisk() throws {
        let folder = try temporaryDirectory("latent-run")
        try png(folder, "a.png", 40, 32)
        try png(folder, "b.png", 32, 40, shade: 80)
        var settings = DatasetSettings()
        settings.cacheLatentsToDisk = true
        var c = config(folder, settings: settings)
        c.pipeline = TestPaths.pipelineFixture("tiny-sd")
        c.resolution = 32
        c.loop.saveEvery = 2
        let run = try temporaryDirectory("latent-run-out")
        let first = try StyleTrainer(config: c, model: try StableDiffusionModel(path: c.pipeline), runDirectory: run, classImages: nil)
        XCTAssertNotNil(first.instances.buckets)
        XCTAssertEqual(try first.loop.run(), .finished)
        let latents = run.appendingPathComponent("latents")
        let files = try FileManager.default.contentsOfDirectory(atPath: latents.path).sorted()
        XCTAssertFalse(files.isEmpty)
        let dates = try files.map { try FileManager.default.attributesOfItem(atPath: latents.appendingPathComponent($0).path)[.modificationDate] as? Date }
        c.loop.steps = 6
        let resumed = try StyleTrainer(config: c, model: try StableDiffusionModel(path: c.pipeline), runDirectory: run, classImages: nil)
        try resumed.resume()
        XCTAssertEqual(try resumed.loop.run(), .finished)
        let after = try FileManager.default.contentsOfDirectory(atPath: latents.path).sorted()
        XCTAssertEqual(after, files, "center crops without flips: the same two latents, read back")
        XCTAssertEqual(try after.map { try FileManager.default.attributesOfItem(atPath: latents.appendingPathComponent($0).path)[.modificationDate] as? Date }, dates)
    }
}
