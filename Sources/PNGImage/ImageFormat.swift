// ImageFormat: what a file holds, told by its first bytes (never by its name).
//
// PNG, JPEG and WebP are read (ImageFile); the other picture formats people have (GIF, BMP, TIFF, HEIC/HEIF,
// AVIF, JPEG XL) are recognised so that the error can say what the file is and to convert it.
import Foundation

public enum ImageFormat: String, Sendable, CaseIterable {
    case png = "PNG"
    case jpeg = "JPEG"
    case webp = "WebP"
    case gif = "GIF"
    case bmp = "BMP"
    case tiff = "TIFF"
    case heif = "HEIC/HEIF"
    case avif = "AVIF"
    case jpegXL = "JPEG XL"

    /// The formats ImageFile decodes.
    public static let readable: [ImageFormat] = [.png, .jpeg, .webp]

    public var isReadable: Bool { ImageFormat.readable.contains(self) }

    /// How many leading bytes `sniff` looks at.
    public static let signatureLength = 32

    /// The format whose signature `header` (a file's first bytes) starts with, nil when none matches.
    public static func sniff<C: Collection>(_ header: C) -> ImageFormat? where C.Element == UInt8 {
        let b = Array(header.prefix(signatureLength))
        func starts(_ s: [UInt8], at offset: Int = 0) -> Bool {
            b.count >= offset + s.count && Array(b[offset..<offset + s.count]) == s
        }
        func ascii(_ s: String, at offset: Int = 0) -> Bool { starts(Array(s.utf8), at: offset) }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if ascii("RIFF"), ascii("WEBP", at: 8) { return .webp }
        if ascii("GIF87a") || ascii("GIF89a") { return .gif }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return .tiff }
        if starts([0xFF, 0x0A]) || starts([0, 0, 0, 0x0C, 0x4A, 0x58, 0x4C, 0x20, 0x0D, 0x0A, 0x87, 0x0A]) { return .jpegXL }
        if ascii("ftyp", at: 4), b.count >= 12 {
            let brand = String(decoding: b[8..<12], as: UTF8.self)
            if ["avif", "avis"].contains(brand) { return .avif }
            if ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"].contains(brand) { return .heif }
        }
        // BMP: "BM", the file size, two reserved zero words, then the pixel offset (at least the 14 + 12 header bytes).
        if ascii("BM"), b.count >= 14, b[6] == 0, b[7] == 0, b[8] == 0, b[9] == 0,
           Int(b[10]) | Int(b[11]) << 8 | Int(b[12]) << 16 | Int(b[13]) << 24 >= 26 {
            return .bmp
        }
        return nil
    }

    /// The format of the file at `path` from its first bytes; nil when it is no picture format known here
    /// (or cannot be opened).
    public static func sniff(path: String) -> ImageFormat? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: signatureLength) else { return nil }
        return sniff(data)
    }

    /// File name extensions (lower case) that people give pictures; a file with one of them is treated as a picture
    /// even when its content is not recognised, so that a damaged photo is an error rather than silently left out.
    public static let pictureExtensions: Set<String> = [
        "png", "jpg", "jpeg", "jpe", "jfif", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif", "jxl",
    ]
}
