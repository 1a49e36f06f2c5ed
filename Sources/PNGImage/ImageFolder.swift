// ImageFolder: which files of a folder are pictures, told by their content, and which are not.
//
// A file is a picture when its first bytes are a picture format's signature (ImageFormat.sniff: PNG, JPEG,
// WebP, and the formats that are recognised only to be refused, GIF, HEIC, …), or when its name has a picture
// extension (a damaged photo must be an error, not silently left out). Everything else is skipped and counted
// in one line: hidden files (.DS_Store, ._IMG_0001.jpg that macOS leaves on other disks), Thumbs.db,
// desktop.ini, .npz caches, notes. Caption files (NAME.txt, NAME.caption) beside a picture NAME.* are captions,
// not skipped files; a caption file without its picture is skipped like any other.
import Foundation

public struct ImageFolder: Sendable {
    /// The folder, as given.
    public let directory: String
    /// File names of the pictures, sorted.
    public let images: [String]
    /// File names of caption files that belong to a picture, sorted.
    public let captions: [String]
    /// Names of the sub-folders, sorted.
    public let subfolders: [String]
    /// File names that are neither pictures nor their captions, sorted.
    public let skipped: [String]

    /// The caption extensions kohya's and diffusers' trainers use.
    public static let defaultCaptionExtensions = ["txt", "caption"]

    /// Lists `directory`. `captionExtensions` (without the dot, any case) name the caption files.
    public static func scan(_ directory: String, captionExtensions: [String] = defaultCaptionExtensions) throws -> ImageFolder {
        let fm = FileManager.default
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: directory).sorted()
        } catch {
            throw ImageFileError.io(path: directory, detail: (error as NSError).localizedFailureReason ?? error.localizedDescription)
        }
        var images: [String] = [], others: [String] = [], subfolders: [String] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            var isFolder: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isFolder) else { others.append(name); continue }
            if isFolder.boolValue {
                if !name.hasPrefix(".") { subfolders.append(name) }
            } else if isPicture(name: name, path: path) {
                images.append(name)
            } else {
                others.append(name)
            }
        }
        let stems = Set(images.map { ($0 as NSString).deletingPathExtension })
        let captionExtensions = Set(captionExtensions.map { $0.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: ".")) })
        let captions = others.filter {
            !$0.hasPrefix(".") && captionExtensions.contains(($0 as NSString).pathExtension.lowercased())
                && stems.contains(($0 as NSString).deletingPathExtension)
        }
        let captionSet = Set(captions)
        return ImageFolder(directory: directory, images: images, captions: captions, subfolders: subfolders,
                           skipped: others.filter { !captionSet.contains($0) })
    }

    /// Whether the file `name` at `path` counts as a picture: never a hidden file; otherwise by content, or by
    /// a picture extension.
    public static func isPicture(name: String, path: String) -> Bool {
        if name.hasPrefix(".") { return false }
        if ImageFormat.sniff(path: path) != nil { return true }
        return ImageFormat.pictureExtensions.contains((name as NSString).pathExtension.lowercased())
    }

    /// The caption file of picture `image` for `extension` ("txt"), when the folder has it.
    public func caption(of image: String, extension ext: String) -> String? {
        let wanted = (image as NSString).deletingPathExtension + "." + ext
        return captions.first { $0 == wanted } ?? captions.first { $0.lowercased() == wanted.lowercased() }
    }

    /// "skipped 3 files that are not images in DIR: .DS_Store, Thumbs.db, notes.npz" (at most `listing` names,
    /// then "and N more"); nil when nothing was skipped.
    /// `ignoring`: file names the caller keeps beside its pictures on purpose (not reported).
    public func skippedSummary(listing: Int = 8, ignoring: Set<String> = []) -> String? {
        let skipped = self.skipped.filter { !ignoring.contains($0) }
        guard !skipped.isEmpty else { return nil }
        let shown = skipped.prefix(listing).joined(separator: ", ")
        let more = skipped.count > listing ? " and \(skipped.count - listing) more" : ""
        let what = skipped.count == 1 ? "1 file that is not an image" : "\(skipped.count) files that are not images"
        return "skipped \(what) in \(directory): \(shown)\(more)"
    }
}
