// ImageOrientation: the EXIF orientation of a JPEG, WebP or PNG file, found as Pillow's `getexif()` finds it,
// and applied as `ImageOps.exif_transpose` applies it (diffusers' `load_image` does both).
//
// Where the orientation comes from (Pillow 13):
//   JPEG  APP1 segments starting "Exif\0\0" (the first one, later ones appended), before the first scan
//   WebP  the EXIF chunk of the RIFF container
//   PNG   the eXIf chunk (anywhere in the file), else a "Raw profile type exif" text chunk (hex, as ImageMagick
//         writes it)
// In each, tag 0x0112 of the TIFF block's first IFD (either byte order, a leading "Exif\0\0" or two skipped).
// When that tag is absent, an XMP packet's `tiff:Orientation="N"` or `<tiff:Orientation>N<` is used (JPEG: the
// APP1 segment "http://ns.adobe.com/xap/1.0/"; WebP: the "XMP " chunk; PNG: the iTXt "XML:com.adobe.xmp").
// Values other than 2...8 leave the picture as stored. Unlike Pillow, an EXIF block that is not TIFF data is
// ignored instead of failing the read.

/// The eight EXIF orientations: how the stored pixels must be transposed to show the picture upright.
extension Image {
    /// The picture as it should be shown, given the EXIF orientation `orientation` of its stored pixels (Pillow's
    /// `exif_transpose`): 2 mirror, 3 rotate 180°, 4 flip top to bottom, 5 transpose, 6 rotate 90° clockwise,
    /// 7 transverse, 8 rotate 90° counter-clockwise; any other value returns the image unchanged.
    public func applyingEXIFOrientation(_ orientation: Int) -> Image {
        guard (2...8).contains(orientation) else { return self }
        let (w, h) = (width, height)
        let swapped = orientation >= 5
        let (ow, oh) = swapped ? (h, w) : (w, h)
        // Output (x, y) reads stored pixel index start + x·stepX + y·stepY.
        let (start, stepX, stepY): (Int, Int, Int)
        switch orientation {
        case 2: (start, stepX, stepY) = (w - 1, -1, w)                   // FLIP_LEFT_RIGHT
        case 3: (start, stepX, stepY) = (w * h - 1, -1, -w)              // ROTATE_180
        case 4: (start, stepX, stepY) = ((h - 1) * w, 1, -w)             // FLIP_TOP_BOTTOM
        case 5: (start, stepX, stepY) = (0, w, 1)                        // TRANSPOSE
        case 6: (start, stepX, stepY) = ((h - 1) * w, -w, 1)             // ROTATE_270 (clockwise)
        case 7: (start, stepX, stepY) = ((h - 1) * w + w - 1, -w, -1)    // TRANSVERSE
        default: (start, stepX, stepY) = (w - 1, w, -1)                  // 8: ROTATE_90 (counter-clockwise)
        }
        return Image(width: ow, height: oh) { out in
            pixels.withUnsafeBufferPointer { src in
                var d = 0
                for y in 0..<oh {
                    var s = start + y * stepY
                    for _ in 0..<ow {
                        out[d] = src[3 * s]
                        out[d + 1] = src[3 * s + 1]
                        out[d + 2] = src[3 * s + 2]
                        d += 3
                        s += stepX
                    }
                }
            }
        }
    }
}

/// The orientation metadata of a file, read from its raw bytes.
enum ImageOrientationReader {
    /// The orientation Pillow's `exif_transpose` would apply to `bytes` of format `format` (1 when none);
    /// `text` are a PNG's decoded text chunks.
    static func orientation(of bytes: UnsafeRawBufferPointer, format: ImageFormat, text: [PNGTextChunk] = []) -> Int {
        var exif: [UInt8]?
        var xmp: [UInt8]?
        switch format {
        case .jpeg: (exif, xmp) = jpegMetadata(bytes)
        case .webp: (exif, xmp) = webpMetadata(bytes)
        case .png:
            exif = pngEXIf(bytes)
            if exif == nil, let raw = text.first(where: { $0.keyword == "Raw profile type exif" }) {
                exif = rawProfileBytes(raw.text)
            }
            if let packet = text.first(where: { $0.keyword == "XML:com.adobe.xmp" }) { xmp = Array(packet.text.utf8) }
        default: break
        }
        if let exif, let value = tiffOrientation(exif) { return value }
        if let xmp, let value = xmpOrientation(xmp) { return value }
        return 1
    }

    // MARK: - Containers

    /// JPEG: the Exif APP1 data (first segment whole, later ones appended without their "Exif\0\0", as Pillow
    /// joins them) and the last XMP APP1 packet, from the segments before the first scan.
    static func jpegMetadata(_ b: UnsafeRawBufferPointer) -> (exif: [UInt8]?, xmp: [UInt8]?) {
        let exifPrefix = Array("Exif\0\0".utf8), xmpPrefix = Array("http://ns.adobe.com/xap/1.0/\0".utf8)
        var exif: [UInt8]?, xmp: [UInt8]?
        var p = 2
        while p + 4 <= b.count {
            guard b[p] == 0xFF else { p += 1; continue }              // junk between segments: skipped, as Pillow does
            let marker = b[p + 1]
            if marker == 0xFF { p += 1; continue }                     // fill byte
            if marker == 0xDA || marker == 0xD9 { break }              // SOS, EOI
            if marker == 0x01 || marker == 0x00 || (0xD0...0xD8).contains(marker) { p += 2; continue }
            let length = Int(b[p + 2]) << 8 | Int(b[p + 3])
            guard length >= 2, p + 2 + length <= b.count else { break }
            let payload = UnsafeRawBufferPointer(rebasing: b[(p + 4)..<(p + 2 + length)])
            if marker == 0xE1 {
                if payload.starts(with: exifPrefix) {
                    if exif == nil { exif = Array(payload) } else { exif! += payload.dropFirst(exifPrefix.count) }
                } else if payload.starts(with: xmpPrefix) {
                    xmp = Array(payload.dropFirst(xmpPrefix.count))
                }
            }
            p += 2 + length
        }
        return (exif, xmp)
    }

    /// WebP: the first EXIF and "XMP " chunks of the RIFF container.
    static func webpMetadata(_ b: UnsafeRawBufferPointer) -> (exif: [UInt8]?, xmp: [UInt8]?) {
        var exif: [UInt8]?, xmp: [UInt8]?
        var p = 12
        while p + 8 <= b.count {
            let size = Int(b[p + 4]) | Int(b[p + 5]) << 8 | Int(b[p + 6]) << 16 | Int(b[p + 7]) << 24
            guard size <= b.count - p - 8 else { break }
            let fourcc = String(decoding: UnsafeRawBufferPointer(rebasing: b[p..<(p + 4)]), as: UTF8.self)
            let payload = Array(UnsafeRawBufferPointer(rebasing: b[(p + 8)..<(p + 8 + size)]))
            if fourcc == "EXIF", exif == nil { exif = payload }
            if fourcc == "XMP ", xmp == nil { xmp = payload }
            p += 8 + size + (size & 1)
        }
        return (exif, xmp)
    }

    /// PNG: the payload of the first eXIf chunk (the chunk list was already checked by the decoder).
    static func pngEXIf(_ b: UnsafeRawBufferPointer) -> [UInt8]? {
        var p = 8
        while p + 12 <= b.count {
            let length = Int(b[p]) << 24 | Int(b[p + 1]) << 16 | Int(b[p + 2]) << 8 | Int(b[p + 3])
            guard length <= b.count - p - 12 else { return nil }
            let type = String(decoding: UnsafeRawBufferPointer(rebasing: b[(p + 4)..<(p + 8)]), as: UTF8.self)
            if type == "eXIf" { return Array(UnsafeRawBufferPointer(rebasing: b[(p + 8)..<(p + 8 + length)])) }
            if type == "IEND" { return nil }
            p += 12 + length
        }
        return nil
    }

    /// ImageMagick's "Raw profile type exif" text: "\nexif\n  LENGTH\nHEX…" (Pillow joins the lines from the fourth on).
    static func rawProfileBytes(_ text: String) -> [UInt8]? {
        let hex = text.split(separator: "\n", omittingEmptySubsequences: false).dropFirst(3).joined()
            .filter { !$0.isWhitespace }
        guard hex.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(hex.count / 2)
        var high: UInt8?
        for c in hex.utf8 {
            guard let v = hexValue(c) else { return nil }
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    // MARK: - Values

    /// Tag 0x0112 of the first IFD of an EXIF block: its value, 0 when the tag is there but not one number,
    /// nil when the tag (or a readable TIFF header) is absent.
    static func tiffOrientation(_ data: [UInt8]) -> Int? {
        var d = data[...]
        let prefix = Array("Exif\0\0".utf8)
        for _ in 0..<2 where d.starts(with: prefix) { d = d.dropFirst(prefix.count) }
        let t = Array(d)
        guard t.count >= 8 else { return nil }
        let little: Bool
        if t[0] == 0x49, t[1] == 0x49, t[2] == 0x2A, t[3] == 0 { little = true }
        else if t[0] == 0x4D, t[1] == 0x4D, t[2] == 0, t[3] == 0x2A { little = false }
        else { return nil }
        func u16(_ i: Int) -> Int? {
            guard i >= 0, i + 2 <= t.count else { return nil }
            return little ? Int(t[i]) | Int(t[i + 1]) << 8 : Int(t[i]) << 8 | Int(t[i + 1])
        }
        func u32(_ i: Int) -> Int? {
            guard let a = u16(i), let b = u16(i + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard let ifd = u32(4), let count = u16(ifd) else { return nil }
        for entry in 0..<count {
            let e = ifd + 2 + 12 * entry
            guard e + 12 <= t.count, let tag = u16(e), let type = u16(e + 2), let n = u32(e + 4) else { return nil }
            guard tag == 0x0112 else { continue }
            guard n == 1 else { return 0 }
            switch type {
            case 1, 6: return Int(t[e + 8])                                  // BYTE, SBYTE
            case 3, 8: return u16(e + 8) ?? 0                                // SHORT, SSHORT
            case 4, 9: return u32(e + 8) ?? 0                                // LONG, SLONG
            default: return 0
            }
        }
        return nil
    }

    /// Pillow's pattern `tiff:Orientation(="|>)([0-9])`, first match.
    static func xmpOrientation(_ xmp: [UInt8]) -> Int? {
        let key = Array("tiff:Orientation".utf8)
        guard xmp.count > key.count + 1 else { return nil }
        var i = 0
        while i + key.count + 1 < xmp.count {
            if xmp[i] == key[0], Array(xmp[i..<(i + key.count)]) == key {
                let j = i + key.count
                if xmp[j] == UInt8(ascii: "="), j + 2 < xmp.count, xmp[j + 1] == UInt8(ascii: "\""),
                   (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(xmp[j + 2]) {
                    return Int(xmp[j + 2] - UInt8(ascii: "0"))
                }
                if xmp[j] == UInt8(ascii: ">"), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(xmp[j + 1]) {
                    return Int(xmp[j + 1] - UInt8(ascii: "0"))
                }
            }
            i += 1
        }
        return nil
    }
}
