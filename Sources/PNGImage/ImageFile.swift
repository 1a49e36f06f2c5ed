// ImageFile: any picture the trainer or `generate --init-image` is given, PNG, JPEG or WebP, told apart by its
// content (ImageFormat.sniff), decoded to the upright 8-bit RGB picture diffusers' `load_image` sees:
// `PIL.Image.open` → `ImageOps.exif_transpose` → RGB, except that transparency is composited on white (as PNG
// does here) instead of dropped.
//
// PNG goes through libpng (PNG.decode). JPEG and WebP go through the system's libjpeg-turbo (libjpeg.so.62) and
// libwebp (libwebp.so.7), loaded at run time by the CImageCodecs target, so that building needs only libpng; on
// macOS ImageIO decodes them (ImageIODecoding.swift). A missing library is one error line that names the
// packages to install. JPEGs decode as Pillow decodes them (the same libjpeg-turbo defaults); CMYK converts as
// Pillow converts it, with Adobe's inverted polarity only for files that carry an Adobe marker (Pillow assumes
// it for every CMYK JPEG). Damaged files are one-line errors: truncated (Pillow refuses those too, a missing
// EOI marker included), corrupt, too large, or a format not read here.
import CImageCodecs
import Foundation

/// What went wrong reading a picture; `source` is a path or "image data". Every description is one line.
public enum ImageFileError: Error, CustomStringConvertible, Equatable {
    case io(path: String, detail: String)
    /// The content is no picture format known here.
    case notAnImage(source: String, detail: String)
    /// A picture in a format not read here (GIF, HEIC, …), or a kind of file not read (an animated WebP).
    case unsupported(source: String, detail: String)
    /// libjpeg.so.62 or libwebp.so.7 could not be loaded.
    case libraryMissing(source: String, format: ImageFormat, detail: String)
    case truncated(source: String, format: ImageFormat, detail: String)
    case corrupt(source: String, format: ImageFormat, detail: String)
    case tooLarge(source: String, detail: String)
    case outOfMemory(source: String, detail: String)

    /// The packages that provide libjpeg.so.62 and libwebp.so.7 (Debian, Ubuntu).
    public static let installCommand = "apt-get install libjpeg62-turbo libwebp7"

    public var description: String {
        switch self {
        case let .io(p, d): return "\(p): cannot read the file: \(d)"
        case let .notAnImage(s, d): return "\(s): not a picture (PNG, JPEG or WebP): \(d)"
        case let .unsupported(s, d), let .tooLarge(s, d), let .outOfMemory(s, d): return "\(s): \(d)"
        case let .libraryMissing(s, f, d):
            return "\(s): reading \(f.rawValue) needs \(ImageFileError.library(f)), which could not be loaded (\(d)); "
                + "install it: \(ImageFileError.installCommand)"
        case let .truncated(s, f, d): return "\(s): truncated \(f.rawValue): \(d)"
        case let .corrupt(s, f, d): return "\(s): corrupt \(f.rawValue): \(d)"
        }
    }

    static func library(_ format: ImageFormat) -> String {
        format == .webp ? "libwebp (libwebp.so.7)" : "libjpeg-turbo (libjpeg.so.62)"
    }
}

/// A picture as read: upright (its EXIF orientation applied), 8-bit RGB, transparency on white.
public struct DecodedImage: Sendable {
    public let image: Image
    public let format: ImageFormat
    /// The EXIF orientation that was applied (1: the pixels were stored upright).
    public let orientation: Int
    /// The size as stored, before the orientation (width and height swap for orientations 5...8).
    public let storedWidth: Int
    public let storedHeight: Int
    /// A JPEG that libjpeg decoded after recovering from corrupt data (as Pillow accepts it): the first warning.
    public let warning: String?
}

public enum ImageFile {
    /// Pictures whose header claims more pixels than this are refused before anything is allocated.
    public static let defaultMaxPixels = PNG.defaultMaxPixels
    /// A progressive JPEG with more scans than this is refused (ordinary ones have about 10; each scan is a pass
    /// over the whole picture, so a hostile file could repeat scans to cost minutes).
    public static let maxJPEGScans = 500

    /// Reads and decodes the picture at `path`, whatever its name says.
    public static func read(path: String, maxPixels: Int = defaultMaxPixels) throws -> DecodedImage {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw ImageFileError.io(path: path, detail: (error as NSError).localizedFailureReason ?? error.localizedDescription)
        }
        return try decode(data, source: path, maxPixels: maxPixels)
    }

    /// Decodes picture bytes held in an array or `Data`; `source` names them in errors.
    public static func decode<D: ContiguousBytes>(_ data: D, source: String = "image data",
                                                  maxPixels: Int = defaultMaxPixels) throws -> DecodedImage {
        try data.withUnsafeBytes { try decode($0, source: source, maxPixels: maxPixels) }
    }

    /// Decodes picture bytes: the format from the first bytes, then the decoder of that format.
    public static func decode(_ bytes: UnsafeRawBufferPointer, source: String = "image data",
                              maxPixels: Int = defaultMaxPixels) throws -> DecodedImage {
        guard bytes.count > 0 else { throw ImageFileError.notAnImage(source: source, detail: "empty: zero bytes") }
        guard let format = ImageFormat.sniff(bytes) else {
            let head = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw ImageFileError.notAnImage(source: source, detail: "no known signature; the data starts with \(head)")
        }
        let stored: Image
        var warning: String?
        var text: [PNGTextChunk] = []
        switch format {
        case .png:
            do {
                let png = try PNG.decode(bytes, maxPixels: maxPixels, source: source)
                stored = png.image
                text = png.text
            } catch let error as PNGError {
                throw ImageFileError(error, source: source)
            }
        case .jpeg, .webp:
            (stored, warning) = try decodeWithSystemLibrary(bytes, format: format, source: source, maxPixels: maxPixels)
        default:
            throw ImageFileError.unsupported(source: source,
                detail: "a \(format.rawValue) picture, which is not read here; convert it to PNG, JPEG or WebP")
        }
        let orientation = ImageOrientationReader.orientation(of: bytes, format: format, text: text)
        return DecodedImage(image: stored.applyingEXIFOrientation(orientation), format: format,
                            orientation: (2...8).contains(orientation) ? orientation : 1,
                            storedWidth: stored.width, storedHeight: stored.height, warning: warning)
    }

    /// nil when `format` can be decoded on this machine; otherwise the one-line reason (the library that is
    /// missing and the packages to install).
    public static func libraryProblem(for format: ImageFormat) -> String? {
        #if canImport(ImageIO)
        return nil
        #else
        var status = sd_codec_status()
        switch format {
        case .jpeg: guard sd_jpeg_library_status(&status) != SD_CODEC_OK else { return nil }
        case .webp: guard sd_webp_library_status(&status) != SD_CODEC_OK else { return nil }
        default: return nil
        }
        let line = ImageFileError.libraryMissing(source: "", format: format, detail: message(&status)).description
        return String(line.dropFirst(2))
        #endif
    }

    // MARK: - JPEG and WebP

    private static func decodeWithSystemLibrary(_ bytes: UnsafeRawBufferPointer, format: ImageFormat, source: String,
                                                maxPixels: Int) throws -> (Image, String?) {
        #if canImport(ImageIO)
        return try ImageIODecoding.decode(bytes, format: format, source: source, maxPixels: maxPixels)
        #else
        var raw = sd_codec_image()
        var status = sd_codec_status()
        let base = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let limit = UInt64(max(0, maxPixels))
        let code = format == .jpeg
            ? sd_jpeg_decode(base, bytes.count, limit, Int32(maxJPEGScans), &raw, &status)
            : sd_webp_decode(base, bytes.count, limit, &raw, &status)
        guard code == SD_CODEC_OK else {
            throw ImageFileError(code: code, message: message(&status), format: format, source: source)
        }
        defer { sd_codec_image_free(&raw) }
        let (w, h, channels) = (Int(raw.width), Int(raw.height), Int(raw.channels))
        let image = Image(width: w, height: h) { out in
            if channels == 4 {
                compositeOnWhite(rgba: raw.pixels, count: w * h, into: out)
            } else {
                out.update(from: raw.pixels, count: w * h * 3)
            }
        }
        let warning = raw.warnings > 0
            ? withUnsafeBytes(of: &raw.first_warning) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            : nil
        return (image, warning)
        #endif
    }

    /// 8-bit RGBA (not premultiplied) → RGB on white: v = (c·a + 255·(255 − a) + 127) / 255, as PNG does.
    static func compositeOnWhite(rgba: UnsafePointer<UInt8>, count: Int, into out: UnsafeMutablePointer<UInt8>) {
        for i in 0..<count {
            let a = UInt32(rgba[4 * i + 3])
            for c in 0..<3 {
                out[3 * i + c] = UInt8((UInt32(rgba[4 * i + c]) * a + 255 * (255 - a) + 127) / 255)
            }
        }
    }

    private static func message(_ status: inout sd_codec_status) -> String {
        withUnsafeBytes(of: &status.message) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }
}

extension ImageFileError {
    init(code: Int32, message: String, format: ImageFormat, source: String) {
        switch Int(code) {
        case Int(SD_CODEC_ERROR_TRUNCATED): self = .truncated(source: source, format: format, detail: message)
        case Int(SD_CODEC_ERROR_TOO_LARGE): self = .tooLarge(source: source, detail: message)
        case Int(SD_CODEC_ERROR_OUT_OF_MEMORY): self = .outOfMemory(source: source, detail: message)
        case Int(SD_CODEC_ERROR_UNSUPPORTED): self = .unsupported(source: source, detail: message)
        case Int(SD_CODEC_ERROR_LIBRARY_MISSING): self = .libraryMissing(source: source, format: format, detail: message)
        case Int(SD_CODEC_ERROR_NOT_THIS_FORMAT): self = .notAnImage(source: source, detail: message)
        default: self = .corrupt(source: source, format: format, detail: message)
        }
    }

    /// A PNG decoding error in this type's words (the details are libpng's and the PNG reader's).
    init(_ error: PNGError, source: String) {
        func trimmed(_ d: String) -> String { d.hasPrefix("truncated: ") ? String(d.dropFirst(11)) : d }
        switch error {
        case let .notPNG(_, d): self = .notAnImage(source: source, detail: d)
        case let .truncated(_, d): self = .truncated(source: source, format: .png, detail: trimmed(d))
        case let .tooLarge(_, d): self = .tooLarge(source: source, detail: d)
        case let .corrupt(_, d): self = .corrupt(source: source, format: .png, detail: d)
        case let .outOfMemory(_, d): self = .outOfMemory(source: source, detail: d)
        case let .io(p, _, d): self = .io(path: p, detail: d)
        case let .invalidArgument(m): self = .corrupt(source: source, format: .png, detail: m)
        }
    }
}
