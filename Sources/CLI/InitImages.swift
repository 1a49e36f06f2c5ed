// `generate --init-image PHOTO|DIR --strength S`: image-to-image jobs, and the init image of a
// `--from-png` re-render. Pictures are PNG, JPEG or WebP told by content and stood upright by their EXIF
// orientation (PNGImage's ImageFile, as the trainer reads them). Everything is read and checked before any
// model is loaded.

import Foundation
import PNGImage
import Pipeline

enum InitImages {
    /// diffusers' `StableDiffusionImg2ImgPipeline` default strength.
    static let defaultStrength = 0.8

    /// `jobs` with the command line's init images applied: each job once per picture of `--init-image` (a file,
    /// or every picture of a folder in name order); a `--from-png` job gets the init image its chunk names.
    static func apply(_ jobs: [GenerateCommand.Job], _ args: ParsedArguments) throws -> [GenerateCommand.Job] {
        let strength = try args.double("strength")
        if let s = strength, !(s > 0 && s <= 1) {
            throw CommandLineError.usage("--strength must be in (0, 1], got \(s)")
        }
        var resize: InitImageResize?
        if let v = args.string("resize") {
            guard let mode = InitImageResize(rawValue: v) else {
                throw CommandLineError.usage("--resize must be stretch or crop, got \"\(v)\"")
            }
            resize = mode
        }
        if var recorded = jobs.first?.parameters.initImage, args.has("from-png") {
            recorded.resize = resize ?? recorded.resize
            return try [fromPNG(jobs[0], recorded, override: args.string("init-image"), strength: strength)]
        }
        guard let option = args.string("init-image") else {
            if strength != nil || resize != nil {
                throw CommandLineError.usage("--strength and --resize need --init-image PHOTO.png")
            }
            return jobs
        }
        let files = try pictures(option)
        let loaded = try files.map { ($0, try read($0), try InitImageReference.hash(ofFile: $0)) }
        return jobs.flatMap { job in
            loaded.map { path, image, hash in
                var j = job
                j.parameters.initImage = InitImageReference(strength: strength ?? defaultStrength, hash: hash, path: path,
                                                            resize: resize ?? .stretch)
                j.initImage = image
                return j
            }
        }
    }

    /// The pictures `option` names: itself, or every picture in the folder (sorted by name); the folder's other
    /// files are skipped with one note on standard error.
    static func pictures(_ option: String) throws -> [String] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: option, isDirectory: &isFolder) else {
            throw CommandLineError.failure("--init-image \(option): no such file or folder")
        }
        guard isFolder.boolValue else { return [option] }
        let folder: ImageFolder
        do {
            folder = try ImageFolder.scan(option, captionExtensions: [])
        } catch {
            throw CommandLineError.failure("--init-image \(error)")
        }
        guard !folder.images.isEmpty else {
            throw CommandLineError.failure("--init-image \(option): the folder holds no picture (PNG, JPEG or WebP)")
        }
        if let skipped = folder.skippedSummary() { printError("generate: note: --init-image " + skipped) }
        return folder.images.map { URL(fileURLWithPath: option).appendingPathComponent($0).path }
    }

    /// The upright picture of an image file, or a one-line error naming it.
    static func read(_ path: String) throws -> Image {
        do {
            return try ImageFile.read(path: path).image
        } catch {
            throw CommandLineError.failure("--init-image \(error)")
        }
    }

    /// A `--from-png` job whose chunk records an img2img run: its init image, from `override` or the recorded
    /// path; the recorded hash must match.
    static func fromPNG(_ job: GenerateCommand.Job, _ recorded: InitImageReference, override: String?,
                        strength: Double?) throws -> GenerateCommand.Job {
        guard let path = override ?? recorded.path else {
            throw CommandLineError.failure("the PNG was made from an init image (hash \(recorded.hash ?? "unknown")) "
                + "whose path it does not record; pass --init-image FILE")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw CommandLineError.failure("the PNG was made from the init image \(path) (hash \(recorded.hash ?? "unknown")), "
                + "which does not exist; pass --init-image FILE")
        }
        var j = job
        j.initImage = try read(path)
        let hash = try InitImageReference.hash(ofFile: path)
        if let expected = recorded.hash, expected != hash {
            printError("generate: warning: the PNG was made from an init image with hash \(expected), \(path) has \(hash); "
                + "the pixels will differ")
        }
        j.parameters.initImage = InitImageReference(strength: strength ?? recorded.strength, hash: hash, path: path,
                                                    resize: recorded.resize)
        return j
    }

    /// The JSON summary's img2img fields.
    static func summary(_ p: GenerationParameters) -> [String: Any] {
        guard let r = p.initImage else { return [:] }
        return ["strength": r.strength, "init_image": r.path ?? "", "init_image_hash": r.hash ?? ""]
    }
}
