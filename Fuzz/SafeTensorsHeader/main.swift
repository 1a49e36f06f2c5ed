// libFuzzer target: arbitrary bytes as a whole safetensors file through the header validator, then
// every tensor it accepts converted to Float32 straight from the input bytes (AddressSanitizer checks
// that no conversion reads outside them). A crash or hang is a bug.
@testable import SafeTensors

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensorsHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let header = try? SafeTensorsHeader(fileBytes: bytes, file: "fuzz.safetensors") else { return 0 }
    var covered = 0
    for t in header.tensors {
        precondition(t.dataOffsets.lowerBound == covered && t.dataOffsets.upperBound <= header.dataSize)
        precondition(t.elementCount * t.dtype.byteSize == t.dataOffsets.count)
        covered = t.dataOffsets.upperBound
        let out = UnsafeMutablePointer<Float>.allocate(capacity: max(1, t.elementCount))
        Conversion.toFloat(t.dtype, bytes.baseAddress! + header.dataStart + t.dataOffsets.lowerBound, out, count: t.elementCount)
        out.deallocate()
    }
    precondition(covered == header.dataSize)
    return 0
}
