// SafeTensorsHeader: the validated header of a safetensors file.
//
// Layout (https://github.com/huggingface/safetensors, "Format"):
//   8 bytes     N, unsigned little-endian: length of the JSON header
//   N bytes     UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}
//               (may be padded with trailing spaces)
//   rest        data section; offsets count from its start. The tensors must cover it entirely,
//               without holes or overlaps.
// Nothing in the header is trusted until every check below has passed.
import TensorCore

/// One tensor as described by a validated header. `dataOffsets` counts from the data section start.
public struct TensorInfo: Equatable, Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let dataOffsets: Range<Int>

    /// Number of elements (product of the shape; validated not to overflow).
    public var elementCount: Int { shape.reduce(1, *) }
}

public struct SafeTensorsHeader: Sendable {
    /// Headers longer than this are refused (the bound of the reference implementation).
    public static let maxHeaderLength = 100_000_000

    /// Tensors in file order (ascending data offsets).
    public let tensors: [TensorInfo]
    /// The `__metadata__` object; empty when absent.
    public let metadata: [String: String]
    /// N, the JSON length; the data section starts at byte 8 + N.
    public let headerLength: Int
    /// Size of the data section in bytes.
    public let dataSize: Int

    /// Byte offset of the data section from the start of the file.
    public var dataStart: Int { 8 + headerLength }

    /// Reads and checks the 8-byte length prefix against the file size; returns N.
    public static func headerLength(prefix: UnsafeRawBufferPointer, fileSize: Int, file: String) throws -> Int {
        if fileSize == 0 { throw SafeTensorsError.emptyFile(file: file) }
        if fileSize < 8 || prefix.count < 8 { throw SafeTensorsError.truncatedLengthPrefix(file: file, size: fileSize) }
        let length = UInt64(littleEndian: prefix.loadUnaligned(as: UInt64.self))
        if length > UInt64(maxHeaderLength) {
            throw SafeTensorsError.headerTooLarge(file: file, length: length, bound: maxHeaderLength)
        }
        if length > UInt64(fileSize - 8) {
            throw SafeTensorsError.headerPastEnd(file: file, length: length, fileSize: fileSize)
        }
        return Int(length)
    }

    /// Validates a whole file held in memory (tests and fuzzing; the reader uses `init(json:…)`).
    public init(fileBytes: UnsafeRawBufferPointer, file: String) throws {
        let length = try SafeTensorsHeader.headerLength(prefix: UnsafeRawBufferPointer(rebasing: fileBytes.prefix(8)),
                                                        fileSize: fileBytes.count, file: file)
        try self.init(json: UnsafeRawBufferPointer(rebasing: fileBytes[8..<(8 + length)]),
                      fileSize: fileBytes.count, file: file)
    }

    /// Validates the JSON header `json` (N bytes) of a file of `fileSize` bytes.
    public init(json: UnsafeRawBufferPointer, fileSize: Int, file: String) throws {
        headerLength = json.count
        guard fileSize >= 8 + json.count else {
            throw SafeTensorsError.headerPastEnd(file: file, length: UInt64(json.count), fileSize: fileSize)
        }
        dataSize = fileSize - 8 - json.count
        if let bad = firstInvalidUTF8Offset(json) { throw SafeTensorsError.invalidUTF8(file: file, offset: bad) }
        let root: JSONValue
        do {
            root = try JSONParser.parse(json)
        } catch let e as JSONSyntaxError {
            throw SafeTensorsError.invalidJSON(file: file, offset: e.offset, reason: e.reason)
        }
        guard case .object(let members) = root else {
            throw SafeTensorsError.invalidHeader(file: file, reason: "the header is \(root.kind), not an object")
        }
        var seen = Set<String>()
        var metadata: [String: String] = [:]
        var tensors: [TensorInfo] = []
        for (name, value) in members {
            guard seen.insert(name).inserted else { throw SafeTensorsError.duplicateName(file: file, name: name) }
            if name == "__metadata__" {
                metadata = try SafeTensorsHeader.metadata(value, file: file)
            } else {
                tensors.append(try SafeTensorsHeader.tensor(name, value, dataSize: dataSize, file: file))
            }
        }
        tensors.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound) }
        try SafeTensorsHeader.checkCoverage(tensors, dataSize: dataSize, file: file)
        self.tensors = tensors
        self.metadata = metadata
    }

    private static func metadata(_ value: JSONValue, file: String) throws -> [String: String] {
        if value == .null { return [:] }
        guard case .object(let members) = value else {
            throw SafeTensorsError.invalidMetadata(file: file, key: "__metadata__", reason: "is \(value.kind), not an object")
        }
        var out: [String: String] = [:]
        for (key, v) in members {
            guard case .string(let s) = v else {
                throw SafeTensorsError.invalidMetadata(file: file, key: key, reason: "value is \(v.kind), not a string")
            }
            guard out.updateValue(s, forKey: key) == nil else {
                throw SafeTensorsError.invalidMetadata(file: file, key: key, reason: "key appears more than once")
            }
        }
        return out
    }

    /// Why a JSON value is not a non-negative 64-bit integer.
    private struct NotAnIndex: Error { let reason: String }

    /// A JSON number literal as a non-negative Int.
    private static func nonNegativeInteger(_ value: JSONValue) throws -> Int {
        guard case .number(let literal) = value else { throw NotAnIndex(reason: "\(value.kind) is not an integer") }
        let digits = literal.hasPrefix("-") ? literal.dropFirst() : Substring(literal)
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw NotAnIndex(reason: "\(literal) is not an integer") }
        if literal.hasPrefix("-") && digits.contains(where: { $0 != "0" }) { throw NotAnIndex(reason: "\(literal) is negative") }
        guard let n = Int(digits) else { throw NotAnIndex(reason: "\(literal) does not fit in 64 bits") }
        return n
    }

    private static func tensor(_ name: String, _ value: JSONValue, dataSize: Int, file: String) throws -> TensorInfo {
        guard case .object(let fields) = value else {
            throw SafeTensorsError.invalidHeader(file: file, reason: "entry '\(name)' is \(value.kind), not an object")
        }
        func field(_ key: String) throws -> JSONValue {
            guard let v = fields.first(where: { $0.key == key })?.value else {
                throw SafeTensorsError.invalidHeader(file: file, reason: "tensor '\(name)' has no '\(key)'")
            }
            return v
        }
        guard case .string(let dtypeName) = try field("dtype") else {
            throw SafeTensorsError.invalidHeader(file: file, reason: "tensor '\(name)': dtype is not a string")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw SafeTensorsError.unknownDType(file: file, tensor: name, dtype: dtypeName)
        }
        guard case .array(let dims) = try field("shape") else {
            throw SafeTensorsError.invalidShape(file: file, tensor: name, reason: "shape is not an array")
        }
        var shape: [Int] = []
        for d in dims {
            do {
                shape.append(try nonNegativeInteger(d))
            } catch let e as NotAnIndex {
                throw SafeTensorsError.invalidShape(file: file, tensor: name, reason: "dimension \(e.reason)")
            }
        }
        guard case .array(let offsets) = try field("data_offsets"), offsets.count == 2 else {
            throw SafeTensorsError.invalidOffsets(file: file, tensor: name, reason: "not an array of two integers")
        }
        var bounds: [Int] = []
        for o in offsets {
            do {
                bounds.append(try nonNegativeInteger(o))
            } catch let e as NotAnIndex {
                throw SafeTensorsError.invalidOffsets(file: file, tensor: name, reason: e.reason)
            }
        }
        let (begin, end) = (bounds[0], bounds[1])
        guard begin <= end else {
            throw SafeTensorsError.invalidOffsets(file: file, tensor: name, reason: "begin \(begin) is after end \(end)")
        }
        guard let count = Tensor.elementCount(shape) else {
            throw SafeTensorsError.shapeOverflow(file: file, tensor: name, shape: shape)
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        if overflow { throw SafeTensorsError.shapeOverflow(file: file, tensor: name, shape: shape) }
        guard end <= dataSize else {
            throw SafeTensorsError.spanPastEnd(file: file, tensor: name, begin: begin, end: end, dataSize: dataSize)
        }
        guard bytes == end - begin else {
            throw SafeTensorsError.spanMismatch(file: file, tensor: name, dtype: dtypeName, shape: shape,
                                                expectedBytes: bytes, spanBytes: end - begin)
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// The spans, sorted, must tile the data section exactly: no overlap, no hole, nothing after.
    private static func checkCoverage(_ sorted: [TensorInfo], dataSize: Int, file: String) throws {
        var covered = 0
        var previous: TensorInfo?
        for t in sorted {
            let span = t.dataOffsets
            if span.lowerBound < covered, let p = previous {
                throw SafeTensorsError.overlap(file: file, tensor: t.name, span: span, other: p.name, otherSpan: p.dataOffsets)
            }
            if span.lowerBound > covered {
                throw SafeTensorsError.uncoveredBytes(file: file, span: covered..<span.lowerBound)
            }
            covered = span.upperBound
            previous = t
        }
        if covered < dataSize { throw SafeTensorsError.uncoveredBytes(file: file, span: covered..<dataSize) }
    }
}
