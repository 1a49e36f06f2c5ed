// Helpers shared by the op tests: seeded random tensors, Double references and finite differences.
import XCTest
@testable import TensorCore

func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var rng = PhiloxRandom(seed: seed)
    return rng.normal(shape: shape, std: scale)
}

func doubles(_ t: Tensor) -> [Double] { t.scalars.map(Double.init) }

/// Central differences of f at x in Double.
func numericalGradient(_ x: [Double], eps: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    var x = x
    return (0..<x.count).map { i in
        let keep = x[i]
        x[i] = keep + eps; let a = f(x)
        x[i] = keep - eps; let b = f(x)
        x[i] = keep
        return (a - b) / (2 * eps)
    }
}

/// Checks an analytic gradient against central differences of f at every `every`-th coordinate of x.
func assertGradient(_ analytic: Tensor, at x: [Double], every: Int = 1, atol: Double, rtol: Double, _ what: String,
                    file: StaticString = #filePath, line: UInt = #line, _ f: ([Double]) -> Double) {
    var x = x
    let indices = Array(stride(from: 0, to: x.count, by: every))
    let numeric = indices.map { i -> Double in
        let keep = x[i]
        x[i] = keep + 1e-6; let a = f(x)
        x[i] = keep - 1e-6; let b = f(x)
        x[i] = keep
        return (a - b) / 2e-6
    }
    assertClose(indices.map { Double(analytic[flat: $0]) }, numeric, atol: atol, rtol: rtol, what, file: file, line: line)
}

func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

/// Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, reporting the first mismatches.
func assertClose(_ actual: [Double], _ expected: [Double], atol: Double, rtol: Double = 0, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(what): count", file: file, line: line)
    var bad = 0
    for i in 0..<min(actual.count, expected.count) {
        let err = abs(actual[i] - expected[i])
        if !(err <= atol + rtol * abs(expected[i])) {
            if bad < 5 { XCTFail("\(what)[\(i)]: got \(actual[i]), expected \(expected[i]), error \(err)", file: file, line: line) }
            bad += 1
        }
    }
    if bad > 5 { XCTFail("\(what): \(bad) mismatches in total", file: file, line: line) }
}

func assertClose(_ actual: Tensor, _ expected: [Double], atol: Double, rtol: Double = 0, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    assertClose(doubles(actual), expected, atol: atol, rtol: rtol, what, file: file, line: line)
}

/// Runs body with 1 and with 2 threads and checks both results agree within tol; returns the 1-thread one.
func assertThreadIndependent(_ what: String, tol: Float = 1e-6, file: StaticString = #filePath, line: UInt = #line,
                             _ body: () throws -> [Tensor]) rethrows {
    let one = try Parallel.$maxThreads.withValue(1) { try body() }
    let two = try Parallel.$maxThreads.withValue(2) { try body() }
    let again = try Parallel.$maxThreads.withValue(2) { try body() }
    for (i, (a, b)) in zip(one, two).enumerated() {
        XCTAssertEqual(a.shape, b.shape, file: file, line: line)
        var worst: Float = 0
        for j in 0..<a.count { worst = max(worst, abs(a[flat: j] - b[flat: j])) }
        XCTAssertLessThanOrEqual(worst, tol, "\(what) output \(i): 1 vs 2 threads differ by \(worst)", file: file, line: line)
    }
    for (i, (a, b)) in zip(two, again).enumerated() {
        XCTAssertEqual(a.scalars, b.scalars, "\(what) output \(i): reruns are not bitwise equal", file: file, line: line)
    }
}
