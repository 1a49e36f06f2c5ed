// train-style's dataset options: kohya's folder layout, --reg, captions, aspect-ratio buckets, latent caching
// and --preview-dataset, mapped onto `DatasetSettings`.
import Foundation
import Pipeline
import Training

enum DatasetArguments {
    static let options: Set<String> = ["reg", "caption-extension", "keep-tokens", "min-bucket", "max-bucket"]
    static let flags: Set<String> = ["shuffle-caption", "no-buckets", "buckets", "bucket-no-upscale", "cache-latents-to-disk",
                                     "preview-dataset", "cache-latents"]
    /// kohya's sd-scripts spellings.
    static let aliases = ["reg-data-dir": "reg", "min-bucket-reso": "min-bucket", "max-bucket-reso": "max-bucket",
                          "enable-bucket": "buckets"]

    static let usage = """
          IMAGES_DIR in kohya's layout: folders N_token class/ (10_sks dog/), each a concept with its own trigger
                                   and class, trained N times per epoch; --token and --class then default to the first
          --reg DIR                class images for prior preservation in the same layout (1_dog/), instead of generated ones
          --caption-extension EXT  caption files NAME.EXT (default: NAME.caption, else NAME.txt)
          --shuffle-caption        shuffle a caption's comma-separated tags each step, keeping the first --keep-tokens N
          --no-buckets             square crops (default: aspect-ratio buckets when the images' aspect ratios differ;
                                   --buckets forces them)  --min-bucket N --max-bucket N (resolution/2, resolution×2)
          --bucket-no-upscale      buckets from the images' own sizes, never enlarging them
          --cache-latents-to-disk  keep VAE latents under the run folder (reused on --resume); they are always cached in
                                   memory (--cache-latents is accepted and changes nothing)
          --preview-dataset        write every prepared image to runs/<run>/dataset/ and a contact sheet, then exit
        """

    static func settings(_ a: ParsedArguments, absolute: (String) -> String) throws -> DatasetSettings {
        var d = DatasetSettings()
        if let reg = a.string("reg") {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: reg, isDirectory: &isDir), isDir.boolValue else {
                throw CommandLineError.usage("--reg \(reg) does not exist or is not a folder")
            }
            d.regDirectory = absolute(reg)
        }
        if let ext = a.string("caption-extension") {
            guard !ext.isEmpty, !ext.contains("/") else { throw CommandLineError.usage("--caption-extension must be like .txt, got \"\(ext)\"") }
            d.captionExtension = ext.hasPrefix(".") ? ext : "." + ext
        }
        d.shuffleCaption = a.has("shuffle-caption")
        d.keepTokens = try a.int("keep-tokens", in: 0...1000) ?? 0
        if a.has("no-buckets"), a.has("buckets") { throw CommandLineError.usage("--buckets and --no-buckets contradict each other") }
        d.buckets = a.has("no-buckets") ? false : a.has("buckets") ? true : nil
        d.bucketSettings = BucketSettings(minSide: try a.int("min-bucket", in: 1...16384), maxSide: try a.int("max-bucket", in: 1...16384),
                                          noUpscale: a.has("bucket-no-upscale"))
        d.cacheLatentsToDisk = a.has("cache-latents-to-disk")
        return d
    }
}

extension DatasetArguments {
    /// Prints the bucket table (kohya's "bucket N: resolution (w, h), count: n") and the mean aspect error.
    static func report(_ instances: DreamBoothDataset, classes: DreamBoothDataset?, console: TrainingConsole) {
        guard instances.buckets != nil else { return }
        for (set, label) in [(instances, "images"), (classes, "class images")] as [(DreamBoothDataset?, String)] {
            guard let set else { continue }
            let table = set.bucketCounts.map { "\($0.size.width)×\($0.size.height): \($0.count)" }.joined(separator: ", ")
            console.note("buckets (\(label), with repeats): \(table)")
        }
        console.note(String(format: "mean aspect-ratio error: %.4f", instances.meanAspectError ?? 0))
    }

    /// --preview-dataset: prepares the images as training would, writes them and the contact sheet under
    /// `runDirectory/dataset/` and `runDirectory/dataset.png`, prints the buckets, and trains nothing.
    static func preview(_ c: StyleTrainingConfig, model: StableDiffusionModel, runDirectory: URL,
                        console: TrainingConsole) throws -> Int32 {
        let resolution = c.resolution ?? model.defaultSize
        let stride = bucketStride(unetLevels: model.unet.config.blockOutChannels.count, vaeFactor: model.spatialFactor)
        let (instances, classes) = try StyleTrainer.readDataset(config: c, settings: c.dataset ?? DatasetSettings(),
                                                                resolution: resolution, stride: stride, classImages: nil)
        for warning in instances.warnings + (classes?.warnings ?? []) { console.note("warning: " + warning) }
        report(instances, classes: classes, console: console)
        let written = try DatasetPreview.write(instances: instances, classes: classes, to: runDirectory)
        console.note("dataset preview: \(written) images in \(runDirectory.path)/dataset/, contact sheet "
            + "\(runDirectory.appendingPathComponent("dataset.png").path); nothing trained")
        return 0
    }
}
