// libFuzzer target: arbitrary bytes through PNG decoding (libpng via the CLibPNG shim), then the
// image operations on whatever decodes. Any input must decode or throw a PNGError; a crash is a bug.
import PNGImage

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNGDecode(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let decoded = try? PNG.decode(bytes, maxPixels: 1 << 16) else { return 0 }
    let image = decoded.image
    precondition(image.pixels.count == image.width * image.height * 3)
    _ = try? image.resized(width: max(1, image.width / 3), height: image.height + 1, filter: .bicubic)
    _ = try? PNG.encode(image, text: decoded.text.filter { !$0.text.unicodeScalars.contains("\u{0}") })
    return 0
}
