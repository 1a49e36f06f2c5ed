// Softmax and log-softmax over the last dimension, forward and backward.
//
// Rows are independent and each is computed in a fixed order, so results do not depend on threads.
import Foundation
import TensorBase

public enum Softmax {
    /// softmax(x) over the last dimension. -inf entries get weight ≈ 0 (a row of only -inf gives 1/D each).
    public static func softmax(_ x: Tensor) throws -> Tensor {
        let d = try lastDim(x, "softmax")
        let y = Tensor(uninitializedShape: x.shape)
        let px = x.storage.pointer, py = y.storage.pointer
        forRows(x.count / d, d) { r in
            let src = px + r * d, dst = py + r * d
            let m = rowMax(src, d)
            mapVectors(src, dst, d) { expv($0 - m) }
            let inv = 1 / sumScalars(dst, d)
            mapVectors(UnsafePointer(dst), dst, d) { $0 * inv }
        }
        return y
    }

    /// dx = y · (dOut − Σ dOut·y), from the forward's output y.
    public static func softmaxBackward(_ dOut: Tensor, output y: Tensor) throws -> Tensor {
        let d = try lastDim(y, "softmaxBackward")
        guard dOut.shape == y.shape else {
            throw TensorError.shapeMismatch("softmaxBackward: dOut \(dOut.shape) and output \(y.shape) differ")
        }
        let dx = Tensor(uninitializedShape: y.shape)
        let pd = dOut.storage.pointer, py = y.storage.pointer, px = dx.storage.pointer
        forRows(y.count / d, d) { r in
            let g = pd + r * d, s = py + r * d
            var acc = Vec(repeating: 0)
            mapVectors(g, s, px + r * d, d) { acc += $0 * $1; return $0 }
            let dot = hsum(acc)
            mapVectors(g, s, px + r * d, d) { ($0 - dot) * $1 }
        }
        return dx
    }

    /// log(softmax(x)) over the last dimension.
    public static func logSoftmax(_ x: Tensor) throws -> Tensor {
        let d = try lastDim(x, "logSoftmax")
        let y = Tensor(uninitializedShape: x.shape)
        let px = x.storage.pointer, py = y.storage.pointer
        forRows(x.count / d, d) { r in
            let src = px + r * d
            let m = rowMax(src, d)
            mapVectors(src, py + r * d, d) { expv($0 - m) }
            let shift = m + Float(log(Double(sumScalars(py + r * d, d))))
            mapVectors(src, py + r * d, d) { $0 - shift }
        }
        return y
    }

    /// dx = dOut − softmax · Σ dOut, from the forward's output y = log-softmax.
    public static func logSoftmaxBackward(_ dOut: Tensor, output y: Tensor) throws -> Tensor {
        let d = try lastDim(y, "logSoftmaxBackward")
        guard dOut.shape == y.shape else {
            throw TensorError.shapeMismatch("logSoftmaxBackward: dOut \(dOut.shape) and output \(y.shape) differ")
        }
        let dx = Tensor(uninitializedShape: y.shape)
        let pd = dOut.storage.pointer, py = y.storage.pointer, px = dx.storage.pointer
        forRows(y.count / d, d) { r in
            let total = sumScalars(pd + r * d, d)
            mapVectors(pd + r * d, py + r * d, px + r * d, d) { $0 - expv($1) * total }
        }
        return dx
    }

    static func lastDim(_ x: Tensor, _ op: String) throws -> Int {
        guard let d = x.shape.last, d > 0 else {
            throw TensorError.shapeMismatch("\(op): x \(x.shape) needs a non-empty last dimension")
        }
        return d
    }

    static func forRows(_ rows: Int, _ d: Int, _ body: (Int) -> Void) {
        Parallel.forEachChunked(count: rows, workers: Parallel.workers(for: rows * d, minWorkPerThread: 1 << 14), body)
    }

    /// Largest entry of a row (finite or ±inf); the max of a row of only -inf is treated as 0.
    static func rowMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = Vec(repeating: -.infinity), j = 0
        while j + 16 <= n { let v = load(p + j); acc = acc.replacing(with: v, where: v .> acc); j += 16 }
        var m = -Float.infinity
        for l in 0..<16 where acc[l] > m { m = acc[l] }
        while j < n { if p[j] > m { m = p[j] }; j += 1 }
        return m == -.infinity ? 0 : m
    }
}
