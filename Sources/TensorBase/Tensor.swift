// Tensor: a dense, contiguous, row-major array of Float32 with a shape.
//
// Value semantics: copying a `Tensor` shares its storage; the first mutation of a shared storage
// copies it (copy-on-write). Kernels take raw pointers obtained once per call, never per element.
//
// Layout conventions (see README "Design"):
//   images / feature maps inside the models: NHWC  [N, H, W, C]
//   token sequences:                         [N, L, C]
//   Linear weights:                          [out, in]  (PyTorch order, as stored in checkpoints)
// NCHW appears only at the API edge (checkpoint conv weights, parity comparisons), converted once.

import Foundation

/// Raw, 64-byte aligned Float32 storage. Owned by `Tensor`; never shared mutably. The memory comes from
/// `TensorMemory.shared`, which reuses freed blocks instead of faulting fresh pages in.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Uninitialised storage for `count` scalars.
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "negative element count")
        self.count = count
        pointer = TensorMemory.shared.allocateFloats(count)
    }

    deinit { TensorMemory.shared.deallocateFloats(pointer, count: count) }
}

public enum TensorError: Error, CustomStringConvertible, Equatable {
    /// A shape does not fit what an operation needs; the message names the operation and both shapes.
    case shapeMismatch(String)
    /// An argument is out of its valid range.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let m): return "shape mismatch: \(m)"
        case .invalidArgument(let m): return "invalid argument: \(m)"
        }
    }
}

public struct Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    public private(set) var storage: TensorStorage

    /// Number of scalars (product of the shape).
    @inlinable public var count: Int { storage.count }
    @inlinable public var rank: Int { shape.count }

    /// Product of a shape, or nil when a dimension is negative or the product overflows `Int`.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = p
        }
        return n
    }

    /// Uninitialised tensor; every element must be written before it is read.
    public init(uninitializedShape shape: [Int]) {
        guard let n = Tensor.elementCount(shape) else { preconditionFailure("invalid shape \(shape)") }
        self.shape = shape
        self.storage = TensorStorage(uninitializedCount: n)
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, repeating: 0)
    }

    public init(shape: [Int], repeating value: Float) {
        self.init(uninitializedShape: shape)
        storage.pointer.initialize(repeating: value, count: count)
    }

    /// A tensor from scalars; throws when the count does not match the shape (user data goes through here).
    public init(shape: [Int], scalars: [Float]) throws {
        guard let n = Tensor.elementCount(shape), n == scalars.count else {
            throw TensorError.shapeMismatch("shape \(shape) needs \(Tensor.elementCount(shape).map(String.init) ?? "an invalid number of") scalars, got \(scalars.count)")
        }
        self.init(uninitializedShape: shape)
        scalars.withUnsafeBufferPointer { src in
            storage.pointer.update(from: src.baseAddress!, count: n)
        }
    }

    /// A tensor filled by `body`, which receives the uninitialised buffer.
    public init(shape: [Int], initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        self.init(uninitializedShape: shape)
        try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// A rank-0 tensor holding one value.
    public init(scalar: Float) {
        self.init(shape: [], repeating: scalar)
    }

    /// All scalars in row-major order.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item needs exactly one element, shape is \(shape)")
        return storage.pointer[0]
    }

    @inlinable public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Mutable access; copies the storage first if another tensor shares it.
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    public mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(uninitializedCount: storage.count)
            copy.pointer.initialize(from: storage.pointer, count: storage.count)
            storage = copy
        }
    }

    /// Same scalars, another shape with the same element count (shares storage).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard let n = Tensor.elementCount(newShape), n == count else {
            throw TensorError.shapeMismatch("cannot reshape \(shape) (\(count) elements) to \(newShape)")
        }
        var t = self
        t.shape = newShape
        return t
    }

    /// Reshape for internal callers that already know the counts agree.
    public func reshapedUnchecked(_ newShape: [Int]) -> Tensor {
        precondition(Tensor.elementCount(newShape) == count, "reshape \(shape) -> \(newShape)")
        var t = self
        t.shape = newShape
        return t
    }

    @inlinable public subscript(flat i: Int) -> Float {
        get { storage.pointer[i] }
    }

    public mutating func set(flat i: Int, _ value: Float) {
        makeUnique()
        storage.pointer[i] = value
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = scalars.prefix(8).map { String(format: "%.5g", Double($0)) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(head)\(count > 8 ? ", …" : "")])"
    }
}
