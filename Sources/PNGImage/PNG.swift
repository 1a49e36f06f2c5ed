// PNG: decoding and encoding through libpng (the CLibPNG shim), text chunks, atomic file writes.
//
// Every colour type and bit depth decodes to 8-bit RGB: palette and low-depth gray are expanded,
// 16-bit samples rounded to 8 bits, and alpha (an alpha channel or tRNS) is composited on white:
//   8-bit:  v = (c·a + 255·(255 − a) + 127) / 255
//   16-bit: v16 = (c·a + 65535·(65535 − a) + 32767) / 65535,  v = (v16·255 + 32767) / 65535
import CLibPNG
import Foundation

/// A tEXt / zTXt / iTXt chunk: a Latin-1 keyword and its text.
public struct PNGTextChunk: Equatable, Sendable {
    public var keyword: String
    public var text: String

    public init(keyword: String, text: String) {
        self.keyword = keyword
        self.text = text
    }
}

/// What went wrong decoding, encoding, reading or writing a PNG; `source` is a path or "PNG data".
public enum PNGError: Error, CustomStringConvertible, Equatable {
    case notPNG(source: String, detail: String)
    case truncated(source: String, detail: String)
    case tooLarge(source: String, detail: String)
    /// libpng refused the data (CRC mismatch, bad chunk, zlib stream error, ...).
    case corrupt(source: String, detail: String)
    case outOfMemory(source: String, detail: String)
    case io(path: String, operation: String, detail: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .notPNG(s, d), let .truncated(s, d), let .tooLarge(s, d), let .outOfMemory(s, d):
            return "\(s): \(d)"
        case let .corrupt(s, d): return "\(s): corrupt PNG: \(d)"
        case let .io(p, op, d): return "\(p): \(op) failed: \(d)"
        case let .invalidArgument(m): return "invalid argument: \(m)"
        }
    }

    init(code: Int32, message: String, source: String) {
        switch Int(code) {
        case Int(SD_PNG_ERROR_NOT_PNG): self = .notPNG(source: source, detail: message)
        case Int(SD_PNG_ERROR_TRUNCATED): self = .truncated(source: source, detail: message)
        case Int(SD_PNG_ERROR_TOO_LARGE): self = .tooLarge(source: source, detail: message)
        case Int(SD_PNG_ERROR_OUT_OF_MEMORY): self = .outOfMemory(source: source, detail: message)
        case Int(SD_PNG_ERROR_INVALID_ARGUMENT): self = .invalidArgument("\(source): \(message)")
        default: self = .corrupt(source: source, detail: message)
        }
    }
}

/// A decoded PNG: the picture, its text chunks and what the file stored.
public struct DecodedPNG: Sendable {
    public let image: Image
    public let text: [PNGTextChunk]
    /// Bit depth and colour type from the IHDR chunk (colour type as in the PNG spec: 0, 2, 3, 4, 6).
    public let bitDepth: Int
    public let colorType: Int
    public let interlaced: Bool
}

public enum PNG {
    /// Images whose header claims more pixels than this are refused before anything is allocated.
    public static let defaultMaxPixels = 64 * 1024 * 1024

    /// Decodes PNG bytes; `source` names them in errors.
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxPixels: Int = defaultMaxPixels,
                              source: String = "PNG data") throws -> DecodedPNG {
        var raw = sd_png_image()
        var status = sd_png_status()
        let code = sd_png_decode(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count,
                                 UInt64(max(0, maxPixels)), &raw, &status)
        guard code == SD_PNG_OK else {
            throw PNGError(code: code, message: message(&status), source: source)
        }
        defer { sd_png_image_free(&raw) }
        let (w, h) = (Int(raw.width), Int(raw.height))
        let image = Image(width: w, height: h) { out in
            composite(raw.pixels, channels: Int(raw.channels), sixteenBit: raw.bit_depth == 16, count: w * h, into: out)
        }
        var text: [PNGTextChunk] = []
        for i in 0..<raw.text_count {
            let t = raw.texts[i]
            let bytes = UnsafeRawBufferPointer(start: t.text, count: t.text_length)
            text.append(PNGTextChunk(keyword: latin1(UnsafeRawBufferPointer(start: t.key, count: strlen(t.key))),
                                     text: t.international != 0 ? String(decoding: bytes, as: UTF8.self) : latin1(bytes)))
        }
        return DecodedPNG(image: image, text: text, bitDepth: Int(raw.source_bit_depth),
                          colorType: Int(raw.source_color_type), interlaced: raw.interlaced != 0)
    }

    /// Decodes PNG bytes held in an array or `Data`.
    public static func decode<D: ContiguousBytes>(_ data: D, maxPixels: Int = defaultMaxPixels,
                                                  source: String = "PNG data") throws -> DecodedPNG {
        try data.withUnsafeBytes { try decode($0, maxPixels: maxPixels, source: source) }
    }

    /// Reads and decodes the PNG file at `path`.
    public static func read(path: String, maxPixels: Int = defaultMaxPixels) throws -> DecodedPNG {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw PNGError.io(path: path, operation: "read", detail: error.localizedDescription)
        }
        return try decode(data, maxPixels: maxPixels, source: path)
    }

    /// Encodes 8-bit RGB (`channels` 3) or RGBA (4) pixels. Text that is all ASCII goes into tEXt
    /// chunks, anything else into iTXt (UTF-8).
    public static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int,
                              text: [PNGTextChunk] = [], compressionLevel: Int = 6) throws -> [UInt8] {
        guard channels == 3 || channels == 4, width > 0, height > 0, width <= Int(Int32.max), height <= Int(Int32.max),
              pixels.count == width * height * channels else {
            throw PNGError.invalidArgument("cannot encode \(pixels.count) bytes as \(width)x\(height) with \(channels) channels")
        }
        var keys: [[CChar]] = []
        var values: [[CChar]] = []
        for t in text {
            keys.append(try keyword(t.keyword))
            guard !t.text.utf8.contains(0) else { throw PNGError.invalidArgument("text of '\(t.keyword)' contains a NUL character") }
            values.append(t.text.utf8.map { CChar(bitPattern: $0) } + [0])
        }
        var status = sd_png_status()
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        let code: Int32 = withPointers(keys) { keyPointers in
            withPointers(values) { valuePointers in
                var inputs = (0..<text.count).map { i in
                    sd_png_text_input(key: keyPointers[i], text: valuePointers[i],
                                      international: text[i].text.unicodeScalars.allSatisfy(\.isASCII) ? 0 : 1)
                }
                return sd_png_encode(pixels, UInt32(width), UInt32(height), Int32(channels), &inputs, inputs.count,
                                     Int32(compressionLevel), &out, &size, &status)
            }
        }
        guard code == SD_PNG_OK, let data = out else {
            throw PNGError(code: code, message: message(&status), source: "PNG encoder")
        }
        defer { sd_png_buffer_free(data) }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// Encodes an image as 8-bit RGB.
    public static func encode(_ image: Image, text: [PNGTextChunk] = [], compressionLevel: Int = 6) throws -> [UInt8] {
        try encode(pixels: image.pixels, width: image.width, height: image.height, channels: 3, text: text,
                   compressionLevel: compressionLevel)
    }

    /// Writes an image as an 8-bit RGB PNG: to a temporary file in the same folder, then renamed.
    public static func write(_ image: Image, to path: String, text: [PNGTextChunk] = []) throws {
        try writeAtomically(try encode(image, text: text), to: path)
    }

    /// Writes `bytes` under a temporary name beside `path`, fsyncs, and renames it to `path`.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let temporary = folder + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        func failure(_ operation: String) -> PNGError {
            .io(path: path, operation: operation, detail: String(cString: strerror(errno)))
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("create \(temporary)") }
        var done = 0
        let written: Bool = bytes.withUnsafeBytes { b in
            while done < b.count {
                let n = Foundation.write(fd, b.baseAddress! + done, b.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
        let synced = written && fsync(fd) == 0
        let error = synced ? nil : failure(written ? "fsync" : "write")
        let closed = close(fd) == 0
        guard synced, closed, rename(temporary, path) == 0 else {
            let e = error ?? failure(closed ? "rename" : "close")
            unlink(temporary)
            throw e
        }
    }

    // MARK: - Helpers

    private static func message(_ status: inout sd_png_status) -> String {
        withUnsafeBytes(of: &status.message) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }

    private static func latin1(_ bytes: UnsafeRawBufferPointer) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(b)) }
        return String(s)
    }

    /// A keyword as a NUL-terminated Latin-1 C string (1–79 printable characters, PNG spec 11.3.4.2).
    private static func keyword(_ k: String) throws -> [CChar] {
        let scalars = Array(k.unicodeScalars)
        guard (1...79).contains(scalars.count),
              scalars.allSatisfy({ (0x20...0x7E).contains($0.value) || (0xA1...0xFF).contains($0.value) }) else {
            throw PNGError.invalidArgument("'\(k)' is not a PNG text keyword (1-79 printable Latin-1 characters)")
        }
        return scalars.map { CChar(bitPattern: UInt8($0.value)) } + [0]
    }

    private static func withPointers<R>(_ strings: [[CChar]], _ body: ([UnsafePointer<CChar>]) -> R) -> R {
        var pointers: [UnsafePointer<CChar>] = []
        func next(_ i: Int) -> R {
            if i == strings.count { return body(pointers) }
            return strings[i].withUnsafeBufferPointer { p in
                pointers.append(p.baseAddress!)
                return next(i + 1)
            }
        }
        return next(0)
    }

    /// Decoded samples (RGB or RGBA, 8 or 16 bits) -> 8-bit RGB composited on white.
    private static func composite(_ source: UnsafeMutablePointer<UInt8>, channels: Int, sixteenBit: Bool,
                                  count: Int, into out: UnsafeMutablePointer<UInt8>) {
        if sixteenBit {
            let s = UnsafeRawPointer(source).assumingMemoryBound(to: UInt16.self)
            for i in 0..<count {
                let a = channels == 4 ? UInt64(s[4 * i + 3]) : 65535
                for c in 0..<3 {
                    let v16 = (UInt64(s[channels * i + c]) * a + 65535 * (65535 - a) + 32767) / 65535
                    out[3 * i + c] = UInt8((v16 * 255 + 32767) / 65535)
                }
            }
        } else if channels == 4 {
            for i in 0..<count {
                let a = UInt32(source[4 * i + 3])
                for c in 0..<3 {
                    out[3 * i + c] = UInt8((UInt32(source[4 * i + c]) * a + 255 * (255 - a) + 127) / 255)
                }
            }
        } else {
            out.update(from: source, count: count * 3)
        }
    }
}
