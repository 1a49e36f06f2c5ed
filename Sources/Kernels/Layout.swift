// Layout: nearest ×2 upsampling (NHWC), concatenation and split along the last (channel) dimension,
// and general permutes (attention heads [N,L,H,D] ↔ [N,H,L,D], NCHW ↔ NHWC), each with its backward.
import TensorBase

public enum Layout {
    /// Nearest-neighbour ×2 upsampling of x [N, H, W, C] → [N, 2H, 2W, C].
    public static func upsampleNearest2x(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw TensorError.shapeMismatch("upsampleNearest2x: x \(x.shape) is not [N, H, W, C]") }
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let y = Tensor(uninitializedShape: [n, 2 * h, 2 * w, c])
        let px = x.storage.pointer, py = y.storage.pointer
        Parallel.forEachChunked(count: n * h, workers: Parallel.workers(for: y.count, minWorkPerThread: 1 << 16)) { row in
            let src = px + row * w * c, dst = py + row * 4 * w * c      // output rows 2·row and 2·row+1
            for j in 0..<w {
                (dst + 2 * j * c).update(from: src + j * c, count: c)
                (dst + (2 * j + 1) * c).update(from: src + j * c, count: c)
            }
            (dst + 2 * w * c).update(from: dst, count: 2 * w * c)
        }
        return y
    }

    /// Backward of `upsampleNearest2x`: dx [N, H, W, C] = sum of each 2×2 block of dOut [N, 2H, 2W, C].
    public static func upsampleNearest2xBackward(_ dOut: Tensor) throws -> Tensor {
        guard dOut.rank == 4, dOut.shape[1] % 2 == 0, dOut.shape[2] % 2 == 0 else {
            throw TensorError.shapeMismatch("upsampleNearest2xBackward: dOut \(dOut.shape) is not [N, 2H, 2W, C]")
        }
        let (n, h, w, c) = (dOut.shape[0], dOut.shape[1] / 2, dOut.shape[2] / 2, dOut.shape[3])
        let dx = Tensor(uninitializedShape: [n, h, w, c])
        let pd = dOut.storage.pointer, px = dx.storage.pointer
        Parallel.forEachChunked(count: n * h, workers: Parallel.workers(for: dOut.count, minWorkPerThread: 1 << 16)) { row in
            let top = pd + row * 4 * w * c, bottom = top + 2 * w * c, dst = px + row * w * c
            for j in 0..<w {
                let a = top + 2 * j * c, b = bottom + 2 * j * c
                mapVectors(a, a + c, dst + j * c, c) { $0 + $1 }
                mapVectors(UnsafePointer(dst + j * c), b, dst + j * c, c) { $0 + $1 }
                mapVectors(UnsafePointer(dst + j * c), b + c, dst + j * c, c) { $0 + $1 }
            }
        }
        return dx
    }

    /// Concatenation along the last dimension; all leading dimensions must agree.
    public static func concatLastDim(_ parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first else { throw TensorError.invalidArgument("concatLastDim: no tensors") }
        let lead = Array(first.shape.dropLast())
        for p in parts where p.rank == 0 || Array(p.shape.dropLast()) != lead {
            throw TensorError.shapeMismatch("concatLastDim: \(p.shape) does not match leading dims of \(first.shape)")
        }
        let widths = parts.map { $0.shape.last! }, total = widths.reduce(0, +)
        let rows = lead.reduce(1, *)
        let y = Tensor(uninitializedShape: lead + [total])
        let py = y.storage.pointer
        let sources = parts.map { $0.storage.pointer }
        Parallel.forEachChunked(count: rows, workers: Parallel.workers(for: y.count, minWorkPerThread: 1 << 16)) { r in
            var o = r * total
            for (k, w) in widths.enumerated() { (py + o).update(from: sources[k] + r * w, count: w); o += w }
        }
        return y
    }

    /// Splits the last dimension into consecutive pieces of the given sizes (the backward of concat).
    public static func splitLastDim(_ x: Tensor, sizes: [Int]) throws -> [Tensor] {
        guard let last = x.shape.last, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == last else {
            throw TensorError.shapeMismatch("splitLastDim: sizes \(sizes) do not add up to the last dim of \(x.shape)")
        }
        let lead = Array(x.shape.dropLast()), rows = lead.reduce(1, *), px = x.storage.pointer
        var out: [Tensor] = [], offset = 0
        for w in sizes {
            let t = Tensor(uninitializedShape: lead + [w])
            let pt = t.storage.pointer, o = offset
            for r in 0..<rows { (pt + r * w).update(from: px + r * last + o, count: w) }
            out.append(t); offset += w
        }
        return out
    }

    /// y = x with its dimensions reordered: y.shape[i] = x.shape[dims[i]].
    public static func permute(_ x: Tensor, _ dims: [Int]) throws -> Tensor {
        guard dims.count == x.rank, Set(dims) == Set(0..<x.rank) else {
            throw TensorError.invalidArgument("permute: \(dims) is not a permutation of the dims of \(x.shape)")
        }
        let r = x.rank
        if r == 0 { return x }
        var inStrides = [Int](repeating: 1, count: r)
        for i in stride(from: r - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * x.shape[i + 1] }
        let outShape = dims.map { x.shape[$0] }, strides = dims.map { inStrides[$0] }
        let y = Tensor(uninitializedShape: outShape)
        guard y.count > 0 else { return y }
        let px = x.storage.pointer, py = y.storage.pointer
        let inner = outShape[r - 1], innerStride = strides[r - 1], rows = y.count / inner
        Parallel.forEachChunked(count: rows, workers: Parallel.workers(for: y.count, minWorkPerThread: 1 << 16)) { row in
            var rem = row, src = 0
            for i in stride(from: r - 2, through: 0, by: -1) {
                let q = rem / outShape[i]
                src += (rem - q * outShape[i]) * strides[i]
                rem = q
            }
            let dst = py + row * inner
            if innerStride == 1 {
                dst.update(from: px + src, count: inner)
            } else {
                for j in 0..<inner { dst[j] = px[src + j * innerStride] }
            }
        }
        return y
    }

    /// The inverse permutation, for the backward of `permute`.
    public static func inversePermutation(_ dims: [Int]) -> [Int] {
        var inv = [Int](repeating: 0, count: dims.count)
        for (i, d) in dims.enumerated() where d >= 0 && d < dims.count { inv[d] = i }
        return inv
    }

    /// [N, L, H·D] → [N, H, L, D].
    public static func splitHeads(_ x: Tensor, heads: Int) throws -> Tensor {
        guard x.rank == 3, heads > 0, x.shape[2] % heads == 0 else {
            throw TensorError.shapeMismatch("splitHeads: x \(x.shape) is not [N, L, H·D] with H = \(heads)")
        }
        let v = try x.reshaped([x.shape[0], x.shape[1], heads, x.shape[2] / heads])
        return try permute(v, [0, 2, 1, 3])
    }

    /// [N, H, L, D] → [N, L, H·D].
    public static func mergeHeads(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw TensorError.shapeMismatch("mergeHeads: x \(x.shape) is not [N, H, L, D]") }
        let y = try permute(x, [0, 2, 1, 3])
        return try y.reshaped([x.shape[0], x.shape[2], x.shape[1] * x.shape[3]])
    }
}
