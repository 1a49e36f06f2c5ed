import Foundation
import TensorCore
import XCTest
@testable import SafeTensors

final class SafeTensorsTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    private func bytes<T>(_ values: [T]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    private func f16Bits(_ x: Float) -> UInt16 {
        var out: UInt16 = 0
        convertF32ToF16([x], &out, count: 1)
        return out
    }

    private func float(fromF16 bits: UInt16) -> Float {
        var out: Float = 0
        convertF16ToF32([bits], &out, count: 1)
        return out
    }

    // MARK: - Round trips

    func testRoundTripEveryDTypeAndMetadata() throws {
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "quote\"and\\slash": "line\nbreak ✓"])
        let raw: [(String, DType, [Int], [UInt8], [Float])] = [
            ("f64", .f64, [3], bytes([1.5, -2.25, 1e10] as [Double]), [1.5, -2.25, 1e10]),
            ("f32", .f32, [2, 2], bytes([1, -2, 3.5, 0] as [Float]), [1, -2, 3.5, 0]),
            ("f16", .f16, [2], bytes([UInt16(0x3800), UInt16(0xFBFF)]), [0.5, -65504]),
            ("bf16", .bf16, [2], bytes([UInt16(0x3F80), UInt16(0xC040)]), [1, -3]),
            ("i64", .i64, [2], bytes([Int64(-7), Int64(1) << 40]), [-7, 1_099_511_627_776]),
            ("i32", .i32, [2], bytes([Int32.min, Int32(9)]), [-2_147_483_648, 9]),
            ("i16", .i16, [2], bytes([Int16(-300), Int16(300)]), [-300, 300]),
            ("i8", .i8, [2], bytes([Int8(-128), Int8(127)]), [-128, 127]),
            ("u8", .u8, [3], [0, 128, 255], [0, 128, 255]),
            ("bool", .bool, [3], [1, 0, 1], [1, 0, 1]),
            ("scalar", .f32, [], bytes([Float(4)]), [4]),
            ("empty", .f32, [0, 5], [], []),
        ]
        for (name, dtype, shape, b, _) in raw { try writer.add(name, dtype: dtype, shape: shape, bytes: b) }
        try writer.write(to: path("all.safetensors"))

        let file = try SafeTensorsFile(path: path("all.safetensors"))
        XCTAssertEqual(file.metadata, writer.metadata)
        for t in file.tensors {   // every tensor starts at a multiple of its element size
            XCTAssertEqual((file.header.dataStart + t.dataOffsets.lowerBound) % t.dtype.byteSize, 0, t.name)
        }
        XCTAssertEqual(file.names.prefix(3), ["f64", "i64", "empty"])
        XCTAssertEqual(Set(file.names), Set(raw.map(\.0)))
        for (name, dtype, shape, b, values) in raw {
            let info = try file.info(name)
            XCTAssertEqual(info.dtype, dtype, name)
            XCTAssertEqual(info.shape, shape, name)
            XCTAssertEqual(try file.withRawBytes(of: name) { Array($0) }, b, name)
            let t = try file.tensor(name)
            XCTAssertEqual(t.shape, shape, name)
            XCTAssertEqual(t.scalars, values, name)
        }
    }

    func testTensorRoundTripAsF32F16BF16() throws {
        let n = 100_003
        let t = Tensor(shape: [7, n]) { p in for i in 0..<p.count { p[i] = Float(i % 1000) * 0.37 - 150 } }
        var writer = SafeTensorsWriter()
        try writer.add("a", t, as: .f32)
        try writer.add("b", t, as: .f16)
        try writer.add("c", t, as: .bf16)
        try writer.write(to: path("t.safetensors"))
        let file = try SafeTensorsFile(path: path("t.safetensors"))
        XCTAssertEqual(try file.tensor("a").scalars, t.scalars)
        let h = try file.tensor("b").scalars, b = try file.tensor("c").scalars
        let source = t.scalars
        for i in stride(from: 0, to: source.count, by: 997) {
            XCTAssertEqual(h[i].bitPattern, float(fromF16: f16Bits(source[i])).bitPattern, "F16 at \(i)")
            XCTAssertEqual(h[i], source[i], accuracy: abs(source[i]) / 1024 + 1e-6)
            XCTAssertEqual(b[i], Float(bitPattern: (source[i].bitPattern &+ 0x7FFF &+ ((source[i].bitPattern >> 16) & 1)) & 0xFFFF_0000), "BF16 at \(i)")
            XCTAssertEqual(b[i], source[i], accuracy: abs(source[i]) / 128 + 1e-6)
        }
    }

    // The reader's F16/BF16 paths are TensorCore's converters; check the properties it relies on.
    func testF16ConversionIsExactForEveryPattern() {
        let patterns = (0...UInt16.max).map { $0 }
        var floats = [Float](repeating: 0, count: patterns.count)
        convertF16ToF32(patterns, &floats, count: patterns.count)
        var back = [UInt16](repeating: 0, count: patterns.count)
        convertF32ToF16(floats, &back, count: patterns.count)
        for bits in patterns {
            let exponent = Int(bits >> 10) & 0x1F, mantissa = Double(bits & 0x3FF)
            let sign: Double = bits & 0x8000 != 0 ? -1 : 1
            let x = floats[Int(bits)]
            switch exponent {
            case 0x1F where mantissa == 0: XCTAssertEqual(Double(x), sign * .infinity)
            case 0x1F: XCTAssertTrue(x.isNaN)
            case 0: XCTAssertEqual(Double(x), sign * mantissa / 1024 * pow(2, -14), "\(bits)")
            default: XCTAssertEqual(Double(x), sign * (1 + mantissa / 1024) * pow(2, Double(exponent - 15)), "\(bits)")
            }
            if !x.isNaN { XCTAssertEqual(back[Int(bits)], bits) }
        }
        XCTAssertEqual(f16Bits(1 + 1.0 / 2048), 0x3C00)            // tie -> even
        XCTAssertEqual(f16Bits(1 + 3.0 / 2048), 0x3C02)            // tie -> even
        XCTAssertEqual(f16Bits(65520), 0x7C00)                     // rounds up to infinity
        XCTAssertEqual(f16Bits(1e-9), 0)
    }

    /// A header of odd length puts 16-bit data at odd addresses; the reader must still convert it.
    func testMisalignedSixteenBitTensors() throws {
        let count = 5000
        let f16: [UInt16] = (0..<count).map { UInt16(truncatingIfNeeded: $0 &* 7919) & 0xBBFF }
        let bf16: [UInt16] = (0..<count).map { UInt16(truncatingIfNeeded: $0 &* 104_729) & 0xBF7F }
        let json = #"{"a":{"dtype":"F16","shape":[5000],"data_offsets":[0,10000]},"b":{"dtype":"BF16","shape":[5000],"data_offsets":[10000,20000]}} "#
        XCTAssertEqual(json.utf8.count % 2, 1)
        try Data(hostile(json) + bytes(f16) + bytes(bf16)).write(to: URL(fileURLWithPath: path("odd.safetensors")))
        let file = try SafeTensorsFile(path: path("odd.safetensors"))
        var expectedA = [Float](repeating: 0, count: count), expectedB = expectedA
        convertF16ToF32(f16, &expectedA, count: count)
        convertBF16ToF32(bf16, &expectedB, count: count)
        XCTAssertEqual(try file.tensor("a").scalars, expectedA)
        XCTAssertEqual(try file.tensor("b").scalars, expectedB)
    }

    func testWriterLeavesNoTemporaryFilesAndReplacesAtomically() throws {
        var writer = SafeTensorsWriter()
        try writer.add("x", Tensor(shape: [2], repeating: 1))
        try writer.write(to: path("w.safetensors"))
        try SafeTensorsWriter.write(["x": Tensor(shape: [3], repeating: 2)], metadata: ["m": "v"], as: .bf16, to: path("w.safetensors"))
        let replaced = try SafeTensorsFile(path: path("w.safetensors"))
        XCTAssertEqual(try replaced.tensor("x").scalars, [2, 2, 2])
        XCTAssertEqual(try replaced.info("x").dtype, .bf16)
        XCTAssertEqual(replaced.metadata, ["m": "v"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["w.safetensors"])
        XCTAssertThrowsError(try writer.write(to: path("missing-folder/w.safetensors")))
        XCTAssertThrowsError(try writer.add("x", Tensor(shape: [1], repeating: 0)))
        XCTAssertThrowsError(try writer.add("__metadata__", Tensor(shape: [1], repeating: 0)))
        XCTAssertThrowsError(try writer.add("y", dtype: .f32, shape: [3], bytes: [0, 0, 0, 0]))
    }

    // Fixture made by Tests/Reference/make_safetensors_fixtures.py (the Python safetensors package).
    func testReadsFilesWrittenByPythonSafetensors() throws {
        let fixture = try XCTUnwrap(Bundle.module.url(forResource: "python_dtypes", withExtension: "safetensors", subdirectory: "Fixtures"))
        let json = try XCTUnwrap(Bundle.module.url(forResource: "python_dtypes", withExtension: "json", subdirectory: "Fixtures"))
        struct Expected: Decodable {
            struct Entry: Decodable { let shape: [Int]; let values: [Double] }
            let metadata: [String: String]
            let tensors: [String: Entry]
        }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: json))
        let file = try SafeTensorsFile(path: fixture.path)
        XCTAssertEqual(file.metadata, expected.metadata)
        XCTAssertEqual(Set(file.names), Set(expected.tensors.keys))
        for (name, e) in expected.tensors {
            let t = try file.tensor(name)
            XCTAssertEqual(t.shape, e.shape, name)
            XCTAssertEqual(t.scalars, e.values.map { Float($0) }, name)
        }
        XCTAssertThrowsError(try file.tensor("nope")) {
            XCTAssertEqual($0 as? SafeTensorsError, .missingTensor(file: fixture.path, name: "nope"))
        }
    }

    // MARK: - Hostile files

    /// A file from a header text and a data section (length prefix computed unless given).
    private func hostile(_ header: String, data: Int = 0, length: UInt64? = nil, headerBytes: [UInt8]? = nil) -> [UInt8] {
        let h = headerBytes ?? Array(header.utf8)
        var out = bytes([UInt64(length ?? UInt64(h.count)).littleEndian])
        out += h
        out += [UInt8](repeating: 7, count: data)
        return out
    }

    private func check(_ file: [UInt8], _ expected: SafeTensorsError, line: UInt = #line) throws {
        let p = path("hostile.safetensors")
        try Data(file).write(to: URL(fileURLWithPath: p))
        let name = "hostile.safetensors"
        XCTAssertThrowsError(try file.withUnsafeBytes { try SafeTensorsHeader(fileBytes: $0, file: name) }, line: line) {
            XCTAssertEqual($0 as? SafeTensorsError, expected, line: line)
        }
        XCTAssertThrowsError(try SafeTensorsFile(path: p), line: line) {
            guard let e = $0 as? SafeTensorsError else { return XCTFail("\($0)", line: line) }
            XCTAssertEqual(e.description, expected.description.replacingOccurrences(of: name, with: p), line: line)
        }
    }

    private let f = "hostile.safetensors"
    private let one = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#

    func testEmptyAndTruncatedPrefix() throws {
        try check([], .emptyFile(file: f))
        try check([1, 2, 3], .truncatedLengthPrefix(file: f, size: 3))
    }

    func testHeaderLengthPastFileAndPastBound() throws {
        try check(hostile(one, data: 8, length: 1000), .headerPastEnd(file: f, length: 1000, fileSize: 8 + one.utf8.count + 8))
        try check(hostile(one, data: 8, length: 200_000_000), .headerTooLarge(file: f, length: 200_000_000, bound: 100_000_000))
        try check(hostile(one, data: 8, length: UInt64.max), .headerTooLarge(file: f, length: UInt64.max, bound: 100_000_000))
    }

    func testTruncatedDataSection() throws {
        try check(hostile(one, data: 5), .spanPastEnd(file: f, tensor: "a", begin: 0, end: 8, dataSize: 5))
    }

    func testOffsetsPastEndOfFile() throws {
        let h = #"{"a":{"dtype":"F32","shape":[100],"data_offsets":[100,500]}}"#
        try check(hostile(h, data: 300), .spanPastEnd(file: f, tensor: "a", begin: 100, end: 500, dataSize: 300))
        XCTAssertEqual(SafeTensorsError.spanPastEnd(file: "unet/diffusion_pytorch_model.safetensors", tensor: "x.weight", begin: 100, end: 500, dataSize: 300).description,
                       "unet/diffusion_pytorch_model.safetensors: tensor 'x.weight' spans bytes 100..500 but the data section has 300")
    }

    func testOverlapAndHoles() throws {
        let overlap = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        try check(hostile(overlap, data: 12), .overlap(file: f, tensor: "b", span: 4..<12, other: "a", otherSpan: 0..<8))
        let hole = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        try check(hostile(hole, data: 8), .uncoveredBytes(file: f, span: 0..<4))
        try check(hostile(one, data: 12), .uncoveredBytes(file: f, span: 8..<12))
    }

    func testSpanShapeMismatchAndOverflow() throws {
        let mismatch = #"{"a":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}"#
        try check(hostile(mismatch, data: 8), .spanMismatch(file: f, tensor: "a", dtype: "F16", shape: [3], expectedBytes: 6, spanBytes: 8))
        let overflow = #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#
        try check(hostile(overflow, data: 8), .shapeOverflow(file: f, tensor: "a", shape: [4_294_967_296, 4_294_967_296]))
        let bytesOverflow = #"{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}"#
        try check(hostile(bytesOverflow, data: 8), .shapeOverflow(file: f, tensor: "a", shape: [2_305_843_009_213_693_952]))
        let huge = #"{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}"#
        try check(hostile(huge, data: 8), .invalidShape(file: f, tensor: "a", reason: "dimension 99999999999999999999 does not fit in 64 bits"))
        let negative = #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#
        try check(hostile(negative, data: 8), .invalidShape(file: f, tensor: "a", reason: "dimension -2 is negative"))
        let fractional = #"{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#
        try check(hostile(fractional, data: 8), .invalidShape(file: f, tensor: "a", reason: "dimension 2.0 is not an integer"))
        let backwards = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#
        try check(hostile(backwards, data: 8), .invalidOffsets(file: f, tensor: "a", reason: "begin 8 is after end 0"))
    }

    func testUnknownDTypeInvalidJSONAndNonUTF8() throws {
        let unknown = #"{"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#
        try check(hostile(unknown, data: 2), .unknownDType(file: f, tensor: "a", dtype: "F8_E4M3"))
        try check(hostile(#"{"a":{"dtype":"F32""#, data: 0), .invalidJSON(file: f, offset: 19, reason: "expected ',' or '}' in an object"))
        try check(hostile("[1,2]"), .invalidHeader(file: f, reason: "the header is an array, not an object"))
        var bad = Array(#"{"a\#u{e9}":1}"#.utf8)
        bad[3] = 0xFF
        try check(hostile("", headerBytes: bad), .invalidUTF8(file: f, offset: 3))
        try check(hostile(#"{"a":{"shape":[],"data_offsets":[0,0]}}"#), .invalidHeader(file: f, reason: "tensor 'a' has no 'dtype'"))
    }

    func testDuplicateNamesAndBadMetadata() throws {
        let dup = #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#
        try check(hostile(dup, data: 2), .duplicateName(file: f, name: "a"))
        let meta = #"{"__metadata__":{"k":3}}"#
        try check(hostile(meta), .invalidMetadata(file: f, key: "k", reason: "value is a number, not a string"))
    }

    func testHeaderMayBePaddedAndEscaped() throws {
        let header = #"{"__metadata__":{"k\u00e9\ud83d\ude00":"v\n"},"a\"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}     "#
        let parsed = try hostile(header, data: 1).withUnsafeBytes { try SafeTensorsHeader(fileBytes: $0, file: f) }
        XCTAssertEqual(parsed.metadata, ["ké😀": "v\n"])
        XCTAssertEqual(parsed.tensors.map(\.name), ["a\"b"])
    }
}
