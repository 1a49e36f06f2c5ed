// libFuzzer target: arbitrary bytes through ImageFile.decode (format sniffing; PNG through libpng, JPEG and
// WebP through the system's libjpeg.so.62 / libwebp.so.7 loaded at run time; EXIF / XMP orientation parsing and
// the transposes), then a resize of whatever decodes. Any input must decode or throw an ImageFileError.
import PNGImage

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImageDecode(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let decoded: DecodedImage
    do {
        decoded = try ImageFile.decode(bytes, maxPixels: 1 << 16)
    } catch {
        precondition(error is ImageFileError, "\(error)")
        precondition(!"\(error)".contains("\n"))
        return 0
    }
    let image = decoded.image
    precondition(image.pixels.count == image.width * image.height * 3)
    precondition(decoded.orientation >= 5 ? (image.width, image.height) == (decoded.storedHeight, decoded.storedWidth)
                                          : (image.width, image.height) == (decoded.storedWidth, decoded.storedHeight))
    _ = try? image.resized(width: max(1, image.width / 3), height: image.height + 1, filter: .bicubic)
    return 0
}
