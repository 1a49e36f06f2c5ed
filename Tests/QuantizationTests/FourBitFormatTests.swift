// bitsandbytes' 4-bit format, byte for byte: goldens from Tests/Reference/make_quant_goldens.py
// (bitsandbytes 0.50.2 quantize_4bit / dequantize_4bit on the CPU, blocksize 64, with and without
// compress_statistics).
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class FourBitFormatTests: XCTestCase {
    static let cases: [(String, FourBitType)] = [
        ("nf4_32x128", .nf4), ("nf4_40x70", .nf4), ("nf4_zero_block", .nf4), ("nf4_520x64", .nf4),
        ("fp4_32x128", .fp4), ("fp4_40x70", .fp4), ("fp4_zero_block", .fp4),
    ]

    func goldens() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: TestPaths.tests("QuantizationTests/Fixtures/quant_goldens.safetensors"))
    }

    func bytes(_ f: SafeTensorsFile, _ name: String) throws -> [UInt8] {
        try f.withRawBytes(of: name) { Array($0) }
    }

    func floats(_ f: SafeTensorsFile, _ name: String) throws -> [Float] { try f.tensor(name).scalars }

    /// Bit patterns with −0 read as +0: bitsandbytes' CPU kernel decodes FP4's code 8 as +0, its torch fallback
    /// (taken for some row lengths, e.g. 70) as −0; we decode +0 always.
    func bits(_ t: Tensor) -> [UInt32] { bitPattern(t).map { $0 == 0x8000_0000 ? 0 : $0 } }

    func testDynamicMapEqualsBitsandbytes() throws {
        let expected = try floats(goldens(), "dynamic_map")
        XCTAssertEqual(DynamicMap.signed.map(\.bitPattern), expected.map(\.bitPattern))
    }

    func testQuantizeMatchesBitsandbytesBytes() throws {
        let f = try goldens()
        for (name, type) in Self.cases {
            let input = try f.tensor("\(name).input")
            let q = try FourBitTensor.quantize(input, type: type, compressStatistics: false)
            XCTAssertEqual(q.packed, try bytes(f, "\(name).packed"), "\(name): packed codes")
            XCTAssertEqual(q.scales.map(\.bitPattern), try floats(f, "\(name).absmax").map(\.bitPattern), "\(name): absmax")
            XCTAssertEqual(bits(q.dequantized()), bits(try f.tensor("\(name).dequantized")),
                           "\(name): dequantized")
        }
    }

    func testDoubleQuantizationMatchesBitsandbytes() throws {
        let f = try goldens()
        for (name, type) in Self.cases {
            let input = try f.tensor("\(name).input")
            let q = try FourBitTensor.quantize(input, type: type, compressStatistics: true)
            guard case .nested(let nested) = q.absmax else { return XCTFail("\(name): not nested") }
            XCTAssertEqual(q.packed, try bytes(f, "\(name).nested.packed"), "\(name): packed codes")
            XCTAssertEqual(nested.offset.bitPattern, try floats(f, "\(name).nested.offset")[0].bitPattern, "\(name): offset")
            XCTAssertEqual(nested.absmax.map(\.bitPattern), try floats(f, "\(name).nested.nested_absmax").map(\.bitPattern),
                           "\(name): nested absmax")
            // bitsandbytes' CPU search (BinSearch's Direct2 bucket table, built in float) misses the nearest map entry
            // for a few values near zero, where the map's steps are ~1e-6: allow those, one step away, in 1 % of codes.
            let expectedCodes = try bytes(f, "\(name).nested.absmax")
            let off = zip(nested.codes, expectedCodes).filter { $0 != $1 }
            XCTAssertTrue(off.allSatisfy { abs(Int($0) - Int($1)) == 1 }, "\(name): absmax codes \(off)")
            XCTAssertLessThanOrEqual(off.count * 100, expectedCodes.count, "\(name): \(off.count) absmax codes differ")
            if off.isEmpty {
                XCTAssertEqual(bits(q.dequantized()), bits(try f.tensor("\(name).nested.dequantized")),
                               "\(name): dequantized")
            }
        }
    }

    /// Decoding alone, from bitsandbytes' own bytes (independent of our quantizer).
    func testDequantizeBitsandbytesBytes() throws {
        let f = try goldens()
        for (name, type) in Self.cases {
            let expected = try f.tensor("\(name).nested.dequantized")
            let nested = NestedAbsmax(codes: try bytes(f, "\(name).nested.absmax"),
                                      absmax: try floats(f, "\(name).nested.nested_absmax"),
                                      offset: try floats(f, "\(name).nested.offset")[0], blockSize: 256,
                                      map: try floats(f, "dynamic_map"))
            let q = try FourBitTensor(type: type, shape: expected.shape, blockSize: 64,
                                      packed: try bytes(f, "\(name).nested.packed"), absmax: .nested(nested))
            XCTAssertEqual(bits(q.dequantized()), bits(expected), name)
        }
    }

    func testBadSizesAreOneLineErrors() throws {
        XCTAssertThrowsError(try FourBitTensor(type: .nf4, shape: [4, 64], blockSize: 100, packed: [UInt8](repeating: 0, count: 128),
                                               absmax: .plain([1, 1, 1]), name: "down.weight")) { error in
            XCTAssertEqual("\(error)", "down.weight: 4-bit block size 100 is not one bitsandbytes produces "
                + "(32, 64, 128, 256, 512, 1024, 2048, 4096)")
        }
        XCTAssertThrowsError(try FourBitTensor(type: .nf4, shape: [4, 64], blockSize: 64, packed: [UInt8](repeating: 0, count: 100),
                                               absmax: .plain([1, 1, 1, 1]), name: "w")) { error in
            XCTAssertTrue("\(error)".hasPrefix("w: 100 bytes of 4-bit codes for shape [4, 64]"), "\(error)")
        }
    }
}
