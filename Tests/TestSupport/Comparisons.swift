// Tensor comparisons shared by the test targets: a scale-aware closeness check that names the worst element,
// the largest absolute difference, and bit patterns for "bitwise equal" assertions.
import TensorCore
import XCTest

/// Asserts max|actual − expected| ≤ tolerance · max(1, max|expected|), prints the achieved error and returns it
/// relative to that scale. With `nhwcAgainstNCHW` (the default) a rank-4 `actual` is NHWC and `expected` NCHW
/// (parity goldens come in checkpoint order); pass false to compare two tensors of the same layout.
@discardableResult
public func assertClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float = 1e-4, nhwcAgainstNCHW: Bool = true,
                        _ label: String, file: StaticString = #filePath, line: UInt = #line) throws -> Float {
    let a = nhwcAgainstNCHW && expected.rank == 4 && actual.rank == 4 ? try Layout.permute(actual, [0, 3, 1, 2]) : actual
    guard a.shape == expected.shape else {
        XCTFail("\(label): shape \(a.shape), expected \(expected.shape)", file: file, line: line)
        return .infinity
    }
    let x = a.scalars, y = expected.scalars
    var maxError: Float = 0, worst = 0, scale: Float = 1
    for i in y.indices {
        scale = max(scale, abs(y[i]))
        let e = abs(x[i] - y[i])
        if !(e <= maxError) { maxError = e; worst = i }
    }
    let relative = maxError / scale
    print("\(label): max |error| \(maxError) (\(relative) of scale \(scale))")
    XCTAssertLessThanOrEqual(relative, tolerance, "\(label): element \(worst) is \(x[worst]), expected \(y[worst])",
                             file: file, line: line)
    return relative
}

/// Largest |a − b| over two tensors; infinity when their shapes differ.
public func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    guard a.shape == b.shape else { return .infinity }
    return a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in
        zip(x, y).reduce(0) { max($0, abs($1.0 - $1.1)) }
    } }
}

/// Largest |a|.
public func maxAbs(_ a: Tensor) -> Float {
    a.withUnsafeBufferPointer { $0.reduce(0) { max($0, abs($1)) } }
}

/// A tensor as comparable bits (rank, shape, then every float's bit pattern): equal means bitwise equal.
public func bitPattern(_ t: Tensor?) -> [UInt32] {
    guard let t else { return [] }
    return [UInt32(t.shape.count)] + t.shape.map { UInt32($0) } + t.withUnsafeBufferPointer { $0.map(\.bitPattern) }
}

/// `bitPattern` of every tensor of a state dict.
public func bitPatterns(_ d: [String: Tensor]) -> [String: [UInt32]] { d.mapValues { bitPattern($0) } }
