// Reductions: sum, mean and sum of squares over all scalars or along one axis, with their backward.
//
// Sums over all scalars split the data into fixed 4096-element chunks, sum each chunk in Double and
// add the chunk sums in order, so the result is the same for every thread count.
import TensorBase

public enum Reduction {
    static let chunk = 4096

    /// Σ x over all scalars.
    public static func sum(_ x: Tensor) -> Float { Float(total(x) { $0 }) }

    /// Mean over all scalars (0 for an empty tensor).
    public static func mean(_ x: Tensor) -> Float { x.count == 0 ? 0 : Float(total(x) { $0 } / Double(x.count)) }

    /// Σ x² over all scalars.
    public static func sumOfSquares(_ x: Tensor) -> Float { Float(total(x) { $0 * $0 }) }

    static func total(_ x: Tensor, _ f: (Vec) -> Vec) -> Double {
        let n = x.count, p = x.storage.pointer
        let chunks = (n + chunk - 1) / chunk
        guard chunks > 0 else { return 0 }
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: chunks)
        defer { partial.deallocate() }
        Parallel.forEachChunked(count: chunks, workers: Parallel.workers(for: n, minWorkPerThread: 1 << 16)) { c in
            let lo = c * chunk, hi = min(n, lo + chunk)
            var acc = Vec(repeating: 0), i = lo
            while i + 16 <= hi { acc += f(load(p + i)); i += 16 }
            if i < hi { acc += f(loadPartial(p + i, hi - i)) }
            var s = 0.0
            for l in 0..<16 { s += Double(acc[l]) }
            partial[c] = s
        }
        var s = 0.0
        for c in 0..<chunks { s += partial[c] }
        return s
    }

    /// Σ over `axis`; the axis is removed unless `keepingDimension`.
    public static func sum(_ x: Tensor, axis: Int, keepingDimension: Bool = false) throws -> Tensor {
        let (outer, len, inner) = try split(x.shape, axis, "sum")
        var shape = x.shape
        if keepingDimension { shape[axis] = 1 } else { shape.remove(at: axis) }
        let out = Tensor(zeros: shape)
        let px = x.storage.pointer, po = out.storage.pointer
        Parallel.forEachChunked(count: outer, workers: Parallel.workers(for: x.count, minWorkPerThread: 1 << 16)) { o in
            let d = po + o * inner
            for k in 0..<len {
                mapVectors(UnsafePointer(d), px + (o * len + k) * inner, d, inner) { $0 + $1 }
            }
        }
        return out
    }

    /// Mean over `axis`.
    public static func mean(_ x: Tensor, axis: Int, keepingDimension: Bool = false) throws -> Tensor {
        let s = try sum(x, axis: axis, keepingDimension: keepingDimension)
        let len = x.shape[axis]
        return Elementwise.scale(s, by: len == 0 ? 0 : 1 / Float(len))
    }

    /// Gradient of `sum(x, axis:)`: dOut broadcast back along `axis` to `inputShape`.
    public static func sumBackward(_ dOut: Tensor, inputShape: [Int], axis: Int) throws -> Tensor {
        let (outer, len, inner) = try split(inputShape, axis, "sumBackward")
        guard dOut.count == outer * inner else {
            throw TensorError.shapeMismatch("sumBackward: dOut \(dOut.shape) for input \(inputShape) axis \(axis)")
        }
        let dx = Tensor(uninitializedShape: inputShape)
        let pd = dOut.storage.pointer, px = dx.storage.pointer
        for o in 0..<outer {
            for k in 0..<len { (px + (o * len + k) * inner).update(from: pd + o * inner, count: inner) }
        }
        return dx
    }

    /// Gradient of `mean(x, axis:)`.
    public static func meanBackward(_ dOut: Tensor, inputShape: [Int], axis: Int) throws -> Tensor {
        let g = try sumBackward(dOut, inputShape: inputShape, axis: axis)
        let len = inputShape[axis]
        return Elementwise.scale(g, by: len == 0 ? 0 : 1 / Float(len))
    }

    static func split(_ shape: [Int], _ axis: Int, _ op: String) throws -> (Int, Int, Int) {
        guard axis >= 0, axis < shape.count else {
            throw TensorError.invalidArgument("\(op): axis \(axis) out of range for shape \(shape)")
        }
        return (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }
}
