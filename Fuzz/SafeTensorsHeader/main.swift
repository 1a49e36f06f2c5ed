// libFuzzer target: arbitrary bytes as a whole safetensors file through the header validator.
// Any input must either validate or throw a SafeTensorsError; a crash or hang is a bug.
import SafeTensors

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensorsHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let header = try? SafeTensorsHeader(fileBytes: bytes, file: "fuzz.safetensors") {
        var covered = 0
        for t in header.tensors {
            precondition(t.dataOffsets.lowerBound == covered && t.dataOffsets.upperBound <= header.dataSize)
            precondition(t.elementCount * t.dtype.byteSize == t.dataOffsets.count)
            covered = t.dataOffsets.upperBound
        }
        precondition(covered == header.dataSize)
    }
    return 0
}
