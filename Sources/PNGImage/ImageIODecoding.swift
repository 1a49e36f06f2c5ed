// ImageIODecoding: JPEG and WebP on macOS, through ImageIO (no libjpeg/libwebp there). The stored pixels are
// drawn on white in an sRGB bitmap; the EXIF orientation is applied afterwards by ImageFile, as on Linux.
// Pixels can differ from Pillow's by a few levels (Apple's decoders and colour management); the goldens of
// ImageFormatTests are checked on Linux.
#if canImport(ImageIO) && canImport(CoreGraphics)
import CoreGraphics
import Foundation
import ImageIO

enum ImageIODecoding {
    static func decode(_ bytes: UnsafeRawBufferPointer, format: ImageFormat, source: String,
                       maxPixels: Int) throws -> (Image, String?) {
        let data = Data(bytes: bytes.baseAddress!, count: bytes.count) as CFData
        guard let imageSource = CGImageSourceCreateWithData(data, nil), CGImageSourceGetCount(imageSource) > 0 else {
            throw ImageFileError.corrupt(source: source, format: format, detail: "ImageIO cannot read it")
        }
        if format == .webp, CGImageSourceGetCount(imageSource) > 1 {
            throw ImageFileError.unsupported(source: source, detail: "an animated WebP is not supported; save one frame as a still image")
        }
        if let properties = CGImageSourceCopyPropertiesAtIndex(imageSource, 0, nil) as? [CFString: Any],
           let w = properties[kCGImagePropertyPixelWidth] as? Int, let h = properties[kCGImagePropertyPixelHeight] as? Int,
           w.multipliedReportingOverflow(by: h).overflow || w * h > maxPixels {
            throw ImageFileError.tooLarge(source: source,
                detail: "the header claims \(w)x\(h) pixels, more than the limit of \(maxPixels)")
        }
        guard let picture = CGImageSourceCreateImageAtIndex(imageSource, 0, nil) else {
            let status = CGImageSourceGetStatusAtIndex(imageSource, 0)
            if status == .statusIncomplete || status == .statusUnexpectedEOF {
                throw ImageFileError.truncated(source: source, format: format, detail: "the data ends before the end of the image")
            }
            throw ImageFileError.corrupt(source: source, format: format, detail: "ImageIO cannot decode it (status \(status.rawValue))")
        }
        if CGImageSourceGetStatusAtIndex(imageSource, 0) != .statusComplete {
            throw ImageFileError.truncated(source: source, format: format, detail: "the data ends before the end of the image")
        }
        let (w, h) = (picture.width, picture.height)
        guard w > 0, h > 0, w.multipliedReportingOverflow(by: h).partialValue <= maxPixels else {
            throw ImageFileError.tooLarge(source: source, detail: "\(w)x\(h) pixels, more than the limit of \(maxPixels)")
        }
        var rgba = [UInt8](repeating: 255, count: w * h * 4)
        let drawn: Bool = rgba.withUnsafeMutableBytes { buffer in
            guard let space = CGColorSpace(name: CGColorSpace.sRGB),
                  let context = CGContext(data: buffer.baseAddress, width: w, height: h, bitsPerComponent: 8,
                                          bytesPerRow: w * 4, space: space,
                                          bitmapInfo: CGImageAlphaInfo.premultipliedLast.rawValue) else { return false }
            context.setFillColor(CGColor(red: 1, green: 1, blue: 1, alpha: 1))
            context.fill(CGRect(x: 0, y: 0, width: w, height: h))
            context.draw(picture, in: CGRect(x: 0, y: 0, width: w, height: h))
            return true
        }
        guard drawn else {
            throw ImageFileError.outOfMemory(source: source, detail: "cannot make a \(w)x\(h) bitmap")
        }
        let image = Image(width: w, height: h) { out in
            for i in 0..<(w * h) {
                out[3 * i] = rgba[4 * i]
                out[3 * i + 1] = rgba[4 * i + 1]
                out[3 * i + 2] = rgba[4 * i + 2]
            }
        }
        return (image, nil)
    }
}
#endif
