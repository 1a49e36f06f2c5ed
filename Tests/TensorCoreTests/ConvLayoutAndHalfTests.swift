import XCTest
@testable import TensorCore

final class ConvLayoutTests: XCTestCase {
    func testWeightRoundTripAndIndexing() throws {
        var rng = TestRandom(seed: 21)
        let oihw = rng.tensor([5, 3, 2, 4])
        let hwio = try convWeightFromOIHW(oihw)
        XCTAssertEqual(hwio.shape, [2, 4, 3, 5])
        // hwio[ky, kx, ci, co] == oihw[co, ci, ky, kx]
        XCTAssertEqual(hwio[flat: ((1 * 4 + 3) * 3 + 2) * 5 + 4], oihw[flat: ((4 * 3 + 2) * 2 + 1) * 4 + 3])
        XCTAssertEqual(try convWeightToOIHW(hwio).scalars, oihw.scalars)
    }

    func testActivationRoundTripAndIndexing() throws {
        var rng = TestRandom(seed: 22)
        let nchw = rng.tensor([2, 3, 4, 5])
        let nhwc = try nchwToNHWC(nchw)
        XCTAssertEqual(nhwc.shape, [2, 4, 5, 3])
        XCTAssertEqual(nhwc[flat: ((1 * 4 + 2) * 5 + 3) * 3 + 1], nchw[flat: ((1 * 3 + 1) * 4 + 2) * 5 + 3])
        XCTAssertEqual(try nhwcToNCHW(nhwc).scalars, nchw.scalars)
        XCTAssertThrowsError(try nchwToNHWC(rng.tensor([3, 4, 5]))) { error in
            XCTAssertTrue("\(error)".contains("[3, 4, 5]"), "\(error)")
        }
    }
}

final class HalfPrecisionTests: XCTestCase {
    func f16(_ bits: UInt16) -> Float {
        var out: Float = 0
        withUnsafePointer(to: bits) { convertF16ToF32($0, &out, count: 1) }
        return out
    }
    func toF16(_ x: Float) -> UInt16 {
        var out: UInt16 = 0
        withUnsafePointer(to: x) { convertF32ToF16($0, &out, count: 1) }
        return out
    }
    func bf16(_ bits: UInt16) -> Float {
        var out: Float = 0
        withUnsafePointer(to: bits) { convertBF16ToF32($0, &out, count: 1) }
        return out
    }
    func toBF16(_ x: Float) -> UInt16 {
        var out: UInt16 = 0
        withUnsafePointer(to: x) { convertF32ToBF16($0, &out, count: 1) }
        return out
    }

    func testF16Specials() {
        XCTAssertEqual(f16(0x3C00), 1)
        XCTAssertEqual(f16(0xC000), -2)
        XCTAssertEqual(f16(0x7BFF), 65504)
        XCTAssertEqual(f16(0x0001), Float(sign: .plus, exponent: -24, significand: 1))   // smallest subnormal
        XCTAssertEqual(f16(0x03FF), Float(0x3FF) * Float(sign: .plus, exponent: -24, significand: 1))
        XCTAssertEqual(f16(0x7C00), .infinity)
        XCTAssertEqual(f16(0xFC00), -.infinity)
        XCTAssertTrue(f16(0x7E00).isNaN)
        XCTAssertEqual(f16(0x8000).bitPattern, (-Float(0)).bitPattern)
        XCTAssertEqual(toF16(65520), 0x7C00)                  // rounds up to Inf
        XCTAssertEqual(toF16(65519), 0x7BFF)
        XCTAssertEqual(toF16(1 + 1.0 / 2048), 0x3C00)         // tie -> even
        XCTAssertEqual(toF16(1 + 3.0 / 2048), 0x3C02)         // tie -> even (up)
        XCTAssertEqual(toF16(Float(sign: .plus, exponent: -25, significand: 1)), 0x0000)    // tie -> 0
        XCTAssertEqual(toF16(Float(sign: .plus, exponent: -25, significand: 1.5)), 0x0001)
        XCTAssertEqual(toF16(.infinity), 0x7C00)
        XCTAssertEqual(toF16(-.nan) & 0x7E00, 0x7E00)
        XCTAssertEqual(toF16(1e-10), 0)
    }

    func testF16RoundTripOfEveryPattern() {
        let all = (0...0xFFFF).map { UInt16($0) }
        var wide = [Float](repeating: 0, count: all.count), back = [UInt16](repeating: 0, count: all.count)
        convertF16ToF32(all, &wide, count: all.count)
        convertF32ToF16(wide, &back, count: all.count)
        for i in 0..<all.count where (all[i] & 0x7C00) != 0x7C00 || (all[i] & 0x03FF) == 0 {
            XCTAssertEqual(back[i], all[i], "pattern \(String(all[i], radix: 16))")
        }
        for i in 0..<all.count where (all[i] & 0x7C00) == 0x7C00 && (all[i] & 0x03FF) != 0 {
            XCTAssertTrue(wide[i].isNaN)
        }
    }

    func testBF16RoundingAndSpecials() {
        XCTAssertEqual(bf16(0x3F80), 1)
        XCTAssertEqual(bf16(0x0001), Float(bitPattern: 0x0001_0000))                  // subnormal
        XCTAssertEqual(toBF16(Float(bitPattern: 0x3F80_8000)), 0x3F80)                 // tie -> even (down)
        XCTAssertEqual(toBF16(Float(bitPattern: 0x3F81_8000)), 0x3F82)                 // tie -> even (up)
        XCTAssertEqual(toBF16(Float(bitPattern: 0x3F80_8001)), 0x3F81)
        XCTAssertEqual(toBF16(Float(bitPattern: 0x7F7F_FFFF)), 0x7F80)                 // max float -> Inf
        XCTAssertEqual(toBF16(.infinity), 0x7F80)
        XCTAssertEqual(toBF16(-.infinity), 0xFF80)
        XCTAssertTrue(bf16(toBF16(Float(bitPattern: 0x7F80_0001))).isNaN)              // NaN with low payload only
        XCTAssertTrue(bf16(toBF16(-.nan)).isNaN)
        XCTAssertEqual(toBF16(Float(bitPattern: 0x0000_8001)), 0x0001)                 // subnormal rounding
        let values: [Float] = (0..<1000).map { Float($0) * 0.37 - 150 }
        var narrow = [UInt16](repeating: 0, count: values.count), back = [Float](repeating: 0, count: values.count)
        convertF32ToBF16(values, &narrow, count: values.count)
        convertBF16ToF32(narrow, &back, count: values.count)
        for (v, b) in zip(values, back) { XCTAssertEqual(b, v, accuracy: abs(v) / 256 + 1e-30) }
    }
}
