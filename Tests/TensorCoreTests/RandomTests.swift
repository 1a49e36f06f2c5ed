import XCTest
@testable import TensorCore

final class RandomTests: XCTestCase {
    func testPhiloxKnownAnswer() {
        // Random123 known-answer vector for philox4x32_10, counter 0 and key 0.
        let b = PhiloxRandom.block(seed: 0, index: 0)
        XCTAssertEqual([b.0, b.1, b.2, b.3], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
    }

    func testDeterministicAcrossThreadsAndResumable() throws {
        assertThreadIndependent("philox", tol: 0) {
            var r = PhiloxRandom(seed: 42)
            return [r.normal(shape: [100_001]), r.uniform(shape: [7, 9], low: -1, high: 2)]
        }
        var a = PhiloxRandom(seed: 7)
        _ = a.normal(shape: [13])
        let saved = try JSONEncoder().encode(a)
        let next = a.normal(shape: [5, 5])
        var restored = try JSONDecoder().decode(PhiloxRandom.self, from: saved)
        XCTAssertEqual(restored, PhiloxRandom(seed: 7, offset: 4))
        XCTAssertEqual(restored.normal(shape: [5, 5]).scalars, next.scalars)
        var other = PhiloxRandom(seed: 8)
        XCTAssertNotEqual(other.normal(shape: [5, 5]).scalars, next.scalars)
    }

    func testNormalAndUniformStatistics() {
        var r = PhiloxRandom(seed: 123)
        let n = 200_000
        let z = r.normal(shape: [n], mean: 0, std: 1).scalars.map(Double.init)
        let mean = z.reduce(0, +) / Double(n)
        let variance = z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
        // Standard errors: mean 1/√n ≈ 0.0022, variance √(2/n) ≈ 0.0032; bounds are ~5 standard errors.
        XCTAssertEqual(mean, 0, accuracy: 0.011)
        XCTAssertEqual(variance, 1, accuracy: 0.016)
        XCTAssertEqual(Double(z.filter { abs($0) < 1 }.count) / Double(n), 0.6827, accuracy: 0.006)
        let u = r.uniform(shape: [n], low: -2, high: 6).scalars
        XCTAssertTrue(u.allSatisfy { $0 >= -2 && $0 < 6 })
        XCTAssertEqual(u.reduce(0) { $0 + Double($1) } / Double(n), 2, accuracy: 0.05)
    }
}
