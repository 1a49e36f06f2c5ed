// The finite-difference check as a test assertion.
import Autograd
import TensorCore
import XCTest

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
