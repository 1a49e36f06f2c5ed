import XCTest
import TensorCore
import Autograd

/// A reproducible tensor with entries in [-1, 1) (SplitMix64 on `seed`).
func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var state = seed &* 0x2545_F491_4F6C_DD1D
    return Tensor(shape: shape) { b in
        for i in b.indices {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            b[i] = Float(Double(z >> 40) / Double(1 << 24)) * 2 - 1
        }
    }
}

/// Runs a finite-difference check and fails the test with the report when it does not pass.
func assertGradients(_ inputs: [Tensor], wrt: Set<Int>? = nil, tolerance: Double = 1e-2,
                     file: StaticString = #filePath, line: UInt = #line,
                     _ f: @escaping ([Variable]) throws -> Variable) {
    do {
        let report = try GradientCheck.check(inputs, wrt: wrt, absoluteTolerance: tolerance * 0.1,
                                             relativeTolerance: tolerance, f)
        XCTAssertTrue(report.passed, "\(report)", file: file, line: line)
    } catch {
        XCTFail("gradient check threw: \(error)", file: file, line: line)
    }
}

/// Largest |a − b| over two equally shaped tensors.
func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "\(a.shape) vs \(b.shape)")
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a[flat: i] - b[flat: i])) }
    return m
}
