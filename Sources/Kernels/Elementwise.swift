// Elementwise: broadcasting add/sub/mul, scaling, and the gradient reductions that undo a broadcast.
//
// Broadcasting follows NumPy: shapes are right-aligned and a dimension of 1 stretches. The patterns the
// models use are all fast paths of one plan: same shape, bias [C] on [N,H,W,C], time embedding
// [N,1,1,C] on [N,H,W,C]. The plan collapses dimensions so the inner loop is a contiguous SIMD run.
import TensorBase

/// How one broadcasting binary op walks memory: collapsed output dims, outer to inner, and the element
/// strides of each operand (0 where it is broadcast).
struct BroadcastPlan {
    var shape: [Int]
    var dims: [Int]
    var aStrides: [Int]
    var bStrides: [Int]

    init(_ op: String, _ aShape: [Int], _ bShape: [Int]) throws {
        let r = max(aShape.count, bShape.count)
        let a = Array(repeating: 1, count: r - aShape.count) + aShape
        let b = Array(repeating: 1, count: r - bShape.count) + bShape
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            guard a[i] == b[i] || a[i] == 1 || b[i] == 1 else {
                throw TensorError.shapeMismatch("\(op): cannot broadcast \(aShape) with \(bShape)")
            }
            out[i] = a[i] == 1 ? b[i] : a[i]
        }
        shape = out
        // Row-major strides of each operand, zeroed where the operand is broadcast.
        var sa = [Int](repeating: 0, count: r), sb = sa
        var pa = 1, pb = 1
        for i in stride(from: r - 1, through: 0, by: -1) {
            sa[i] = a[i] == 1 ? 0 : pa
            sb[i] = b[i] == 1 ? 0 : pb
            pa *= a[i]; pb *= b[i]
        }
        // Drop size-1 dims, then merge neighbours that both operands walk contiguously.
        var d: [Int] = [], da: [Int] = [], db: [Int] = []
        for i in 0..<r where out[i] != 1 {
            if let last = d.last, da.last! == sa[i] * out[i], db.last! == sb[i] * out[i] {
                d[d.count - 1] = last * out[i]
                da[da.count - 1] = sa[i]; db[db.count - 1] = sb[i]
            } else {
                d.append(out[i]); da.append(sa[i]); db.append(sb[i])
            }
        }
        if d.isEmpty { d = [1]; da = [0]; db = [0] }
        dims = d; aStrides = da; bStrides = db
    }

    var outerCount: Int { dims.dropLast().reduce(1, *) }
    var inner: Int { dims.last! }

    /// Element offsets of operand a and b for outer index `o` (row-major over dims[0..<last]).
    @inline(__always) func offsets(_ o: Int) -> (Int, Int) {
        var rem = o, oa = 0, ob = 0
        var i = dims.count - 2
        while i >= 0 {
            let q = rem / dims[i], idx = rem - q * dims[i]
            oa += idx * aStrides[i]; ob += idx * bStrides[i]
            rem = q; i -= 1
        }
        return (oa, ob)
    }
}


public enum Elementwise {
    /// a + b with broadcasting.
    public static func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.add, a, b) }
    /// a - b with broadcasting.
    public static func sub(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.sub, a, b) }
    /// a * b with broadcasting.
    public static func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.mul, a, b) }

    /// Elementwise binary op with NumPy broadcasting; throws `shapeMismatch` naming both shapes.
    public static func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        let plan = try BroadcastPlan("\(op)", a.shape, b.shape)
        let out = Tensor(uninitializedShape: plan.shape)
        let pa = a.storage.pointer, pb = b.storage.pointer, po = out.storage.pointer
        let inner = plan.inner, outer = plan.outerCount
        let sa = plan.aStrides.last!, sb = plan.bStrides.last!
        let workers = Parallel.workers(for: outer * inner, minWorkPerThread: 1 << 16)
        Parallel.forChunks(count: outer, workers: workers) { _, range in
            for o in range {
                let (oa, ob) = plan.offsets(o)
                let x = pa + oa, y = pb + ob, z = po + o * inner
                switch (op, sa, sb) {
                case (.add, 1, 1): mapVectors(x, y, z, inner) { $0 + $1 }
                case (.sub, 1, 1): mapVectors(x, y, z, inner) { $0 - $1 }
                case (.mul, 1, 1): mapVectors(x, y, z, inner) { $0 * $1 }
                case (.add, 0, _): let s = x.pointee; mapVectors(y, z, inner) { s + $0 }
                case (.sub, 0, _): let s = x.pointee; mapVectors(y, z, inner) { s - $0 }
                case (.mul, 0, _): let s = x.pointee; mapVectors(y, z, inner) { s * $0 }
                case (.add, _, _): let s = y.pointee; mapVectors(x, z, inner) { $0 + s }
                case (.sub, _, _): let s = y.pointee; mapVectors(x, z, inner) { $0 - s }
                case (.mul, _, _): let s = y.pointee; mapVectors(x, z, inner) { $0 * s }
                }
            }
        }
        return out
    }

    /// Sums `grad` (shaped like a broadcast result) down to `shape`, the gradient of a broadcast operand.
    /// The summation order is fixed, so the result does not depend on the thread count.
    public static func reduceBroadcast(_ grad: Tensor, to shape: [Int]) throws -> Tensor {
        if grad.shape == shape { return grad }
        let plan = try BroadcastPlan("reduceBroadcast", shape, grad.shape)
        guard plan.shape == grad.shape else {
            throw TensorError.shapeMismatch("reduceBroadcast: \(grad.shape) does not broadcast from \(shape)")
        }
        let out = Tensor(zeros: shape)
        let pg = grad.storage.pointer, po = out.storage.pointer
        let inner = plan.inner, outer = plan.outerCount, so = plan.aStrides.last!
        for o in 0..<outer {
            let (oa, _) = plan.offsets(o)
            let g = pg + o * inner, d = po + oa
            if so == 1 {
                mapVectors(UnsafePointer(d), g, d, inner) { $0 + $1 }
            } else {
                d.pointee += sumScalars(g, inner)
            }
        }
        return out
    }

    /// s · x.
    public static func scale(_ x: Tensor, by s: Float) -> Tensor {
        map(x) { $0 * s }
    }

    /// a · x + y for same-shaped x and y (the gradient accumulation step).
    public static func axpy(_ a: Float, _ x: Tensor, _ y: Tensor) throws -> Tensor {
        guard x.shape == y.shape else {
            throw TensorError.shapeMismatch("axpy: x \(x.shape) and y \(y.shape) differ")
        }
        return zip(x, y) { a * $0 + $1 }
    }

    /// Unary map over all scalars, split over the threads. Pass a closure literal (`{ siluv($0) }`): a function passed
    /// by name (`siluv`) stays an out-of-line call per vector, its SIMD16 argument split into four xmm registers.
    @inline(__always) static func map(_ x: Tensor, _ f: (Vec) -> Vec) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        let px = x.storage.pointer, po = out.storage.pointer, n = x.count
        forChunks(n) { lo, hi in mapVectors(px + lo, po + lo, hi - lo, f) }
        return out
    }

    /// Binary map over two same-shaped tensors (the caller checks the shapes).
    @inline(__always) static func zip(_ x: Tensor, _ y: Tensor, _ f: (Vec, Vec) -> Vec) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        let px = x.storage.pointer, py = y.storage.pointer, po = out.storage.pointer, n = x.count
        forChunks(n) { lo, hi in mapVectors(px + lo, py + lo, po + lo, hi - lo, f) }
        return out
    }

    /// Calls body(lo, hi) over 16-aligned chunks of 0..<n, spread over the threads.
    @inline(__always) static func forChunks(_ n: Int, _ body: (Int, Int) -> Void) {
        let workers = Parallel.workers(for: n, minWorkPerThread: 1 << 16)
        if workers == 1 { body(0, n); return }
        let blocks = (n + 15) / 16
        Parallel.forChunks(count: blocks, workers: workers) { _, r in
            body(r.lowerBound * 16, min(n, r.upperBound * 16))
        }
    }
}

/// Sum of n scalars in a fixed order: 16 lanes, lanes combined at the end.
@inline(__always) func sumScalars(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Vec(repeating: 0), i = 0
    while i + 16 <= n { acc += load(p + i); i += 16 }
    if i < n { acc += loadPartial(p + i, n - i) }
    return hsum(acc)
}
