// SafeTensorsError: everything that can be wrong with a safetensors file, each case naming the file
// and, where there is one, the tensor and the byte range involved.

/// An error reading or writing a safetensors file. `file` is the path as the caller gave it.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    /// A system call failed (`operation` names it, `detail` is the OS message).
    case io(file: String, operation: String, detail: String)
    /// The file has zero bytes.
    case emptyFile(file: String)
    /// The file is shorter than the 8-byte header length.
    case truncatedLengthPrefix(file: String, size: Int)
    /// The header length is larger than the reader's bound.
    case headerTooLarge(file: String, length: UInt64, bound: Int)
    /// The header length runs past the end of the file.
    case headerPastEnd(file: String, length: UInt64, fileSize: Int)
    /// The header is not valid UTF-8; `offset` is the first bad byte, counted from the start of the header.
    case invalidUTF8(file: String, offset: Int)
    /// The header is not valid JSON; `offset` counts bytes from the start of the header.
    case invalidJSON(file: String, offset: Int, reason: String)
    /// The JSON is valid but not a safetensors header (wrong types, missing fields).
    case invalidHeader(file: String, reason: String)
    /// Two entries of the header have the same name.
    case duplicateName(file: String, name: String)
    /// A dtype string that is not one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL.
    case unknownDType(file: String, tensor: String, dtype: String)
    /// A shape that is not a list of non-negative integers.
    case invalidShape(file: String, tensor: String, reason: String)
    /// The element count or byte size of a shape overflows 64 bits.
    case shapeOverflow(file: String, tensor: String, shape: [Int])
    /// `data_offsets` is not two non-negative integers with begin <= end.
    case invalidOffsets(file: String, tensor: String, reason: String)
    /// The byte span of a tensor does not equal shape × dtype size.
    case spanMismatch(file: String, tensor: String, dtype: String, shape: [Int], expectedBytes: Int, spanBytes: Int)
    /// A tensor's span runs past the end of the data section.
    case spanPastEnd(file: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    /// Two tensors share bytes.
    case overlap(file: String, tensor: String, span: Range<Int>, other: String, otherSpan: Range<Int>)
    /// Bytes of the data section that no tensor covers (the format forbids holes).
    case uncoveredBytes(file: String, span: Range<Int>)
    /// `__metadata__` is not an object of strings.
    case invalidMetadata(file: String, key: String, reason: String)
    /// A tensor asked for by name is not in the file.
    case missingTensor(file: String, name: String)
    /// A writer was given something it cannot write.
    case invalidArgument(file: String, reason: String)

    public var description: String {
        switch self {
        case let .io(file, operation, detail):
            return "\(file): \(operation) failed: \(detail)"
        case let .emptyFile(file):
            return "\(file): empty file (a safetensors file starts with an 8-byte header length)"
        case let .truncatedLengthPrefix(file, size):
            return "\(file): truncated: \(size) bytes, shorter than the 8-byte header length"
        case let .headerTooLarge(file, length, bound):
            return "\(file): not a safetensors file (its first 8 bytes give a header length of \(length), more than the "
                + "bound of \(bound) bytes)"
        case let .headerPastEnd(file, length, fileSize):
            return "\(file): not a safetensors file, or a truncated one (its header length \(length) runs past the end "
                + "of the file, \(fileSize) bytes)"
        case let .invalidUTF8(file, offset):
            return "\(file): header is not valid UTF-8 at byte \(offset) of the header"
        case let .invalidJSON(file, offset, reason):
            return "\(file): header is not valid JSON at byte \(offset) of the header: \(reason)"
        case let .invalidHeader(file, reason):
            return "\(file): invalid header: \(reason)"
        case let .duplicateName(file, name):
            return "\(file): tensor '\(name)' appears more than once in the header"
        case let .unknownDType(file, tensor, dtype):
            return "\(file): tensor '\(tensor)' has unknown dtype '\(dtype)' (known: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case let .invalidShape(file, tensor, reason):
            return "\(file): tensor '\(tensor)' has an invalid shape: \(reason)"
        case let .shapeOverflow(file, tensor, shape):
            return "\(file): tensor '\(tensor)' has shape \(shape) whose size overflows 64 bits"
        case let .invalidOffsets(file, tensor, reason):
            return "\(file): tensor '\(tensor)' has invalid data_offsets: \(reason)"
        case let .spanMismatch(file, tensor, dtype, shape, expected, span):
            return "\(file): tensor '\(tensor)' is \(dtype) \(shape), which needs \(expected) bytes, but its data_offsets span \(span) bytes"
        case let .spanPastEnd(file, tensor, begin, end, dataSize):
            return "\(file): tensor '\(tensor)' spans bytes \(begin)..\(end) but the data section has \(dataSize)"
        case let .overlap(file, tensor, span, other, otherSpan):
            return "\(file): tensor '\(tensor)' (bytes \(span.lowerBound)..\(span.upperBound)) overlaps tensor '\(other)' (bytes \(otherSpan.lowerBound)..\(otherSpan.upperBound))"
        case let .uncoveredBytes(file, span):
            return "\(file): bytes \(span.lowerBound)..\(span.upperBound) of the data section belong to no tensor"
        case let .invalidMetadata(file, key, reason):
            return "\(file): __metadata__ entry '\(key)': \(reason)"
        case let .missingTensor(file, name):
            return "\(file): no tensor named '\(name)'"
        case let .invalidArgument(file, reason):
            return "\(file): \(reason)"
        }
    }
}
