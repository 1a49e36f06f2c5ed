// SIMDMath: vector transcendental functions on SIMD16<Float> for the kernels of this module.
//
// Everything here is branch-free and uses only operations that compile to single AVX-512 instructions
// (+ - * /, FMA, rounding by magic number, integer shifts and masks). The stdlib's pointwiseMin/Max,
// clamped and squareRoot are scalarised by the compiler (PERFORMANCE.md §6) and are not used.
import TensorBase

typealias Vec = SIMD16<Float>
typealias IVec = SIMD16<Int32>

/// The sum of the 16 lanes, added in lane order from -0: bitwise what the standard library's `sum()`
/// returns. Written here so that no kernel module shares the library's `sum()` specialization with another
/// module (the linker keeps one copy for the binary; see Scripts/check-isa-isolation.sh).
@inline(__always) func hsum(_ v: Vec) -> Float {
    var r = -Float.zero
    for i in 0..<16 { r += v[i] }
    return r
}

@inline(__always) func bits(_ x: Vec) -> IVec { unsafeBitCast(x, to: IVec.self) }
@inline(__always) func float(_ x: IVec) -> Vec { unsafeBitCast(x, to: Vec.self) }

/// max(x, c) for a constant c (one `vmaxps` where the level has it; NaN stays NaN).
@inline(__always) func maxConst(_ x: Vec, _ c: Float) -> Vec { x.replacing(with: Vec(repeating: c), where: x .< c) }
/// min(x, c) for a constant c (NaN stays NaN).
@inline(__always) func minConst(_ x: Vec, _ c: Float) -> Vec { x.replacing(with: Vec(repeating: c), where: x .> c) }

/// |x| by clearing the sign bit.
@inline(__always) func absv(_ x: Vec) -> Vec { float(bits(x) & IVec(repeating: 0x7fff_ffff)) }

/// Lane-wise max (one `vmaxps` where the level has it). Written with `replacing(with:where:)`, which LLVM turns
/// into a compare-and-blend or max; the standard library's `pointwiseMax` is a scalar loop (PERFORMANCE.md §6).
@inline(__always) func maxv(_ a: Vec, _ b: Vec) -> Vec { a.replacing(with: b, where: a .< b) }

/// 2^x with relative error ≤ 1.1e-7 for x in [-126, 126]; inputs outside are clamped (so -inf → 2^-126,
/// which every caller treats as zero weight). Degree-6 minimax polynomial on [-0.5, 0.5].
@inline(__always) func exp2v(_ x0: Vec) -> Vec { exp2Clamped(minConst(maxConst(x0, -126), 126)) }

/// 2^x for x ≤ 126 (attention's softmax weights, where x = score − max ≤ 0): only the lower clamp is applied, and
/// the polynomial runs on fused multiply-adds (`exp2Clamped(fused: true)`): 1.25× the forward's speed at head width
/// 16. Attention's results already depend on the level (its dot products are fused); element-wise kernels keep
/// `exp2v`, bitwise the same on every level.
@inline(__always) func exp2NonPositive(_ x0: Vec) -> Vec { exp2Clamped(maxConst(x0, -126), fused: true) }

/// 2^x for x already in [-126, 126]. `fused`: the polynomial's multiply-adds are fused where the level has FMA
/// (results then differ from SSE2's in the last bit); otherwise each product is rounded, on every level alike.
@inline(__always) func exp2Clamped(_ x: Vec, fused: Bool = false) -> Vec {
    let magic = Vec(repeating: 12_582_912)          // 1.5 · 2^23: adding it rounds to an integer
    let t = x + magic
    let n = t - magic
    let f = x - n                                   // in [-0.5, 0.5]
    @inline(__always) func step(_ p: Vec, _ c: Float) -> Vec { fused ? madd(p, f, c) : p * f + c }
    var p = Vec(repeating: 1.5345799329224974e-4)
    p = step(p, 1.3399932067841291e-3)
    p = step(p, 9.618489071726799e-3)
    p = step(p, 5.550328642129898e-2)
    p = step(p, 0.24022646248340607)
    p = step(p, 0.6931471824645996)
    p = step(p, 1.0)
    let e = (bits(t) &- bits(magic)) &<< 23         // n in the exponent field
    return float(bits(p) &+ e)
}

/// acc + a·b, fused where the level has FMA (Swift does not contract `a * b + c` on its own); a multiply and an add
/// on x86-64's SSE2 baseline, where `addingProduct` would be a `fmaf` call per lane.
@inline(__always) func fmadd(_ acc: Vec, _ a: Vec, _ b: Vec) -> Vec {
#if KERNELS_PORTABLE && (arch(x86_64) || arch(i386))
    return acc + a * b
#else
    return acc.addingProduct(a, b)
#endif
}

/// a·b + c for a constant c (`fmadd`).
@inline(__always) func madd(_ a: Vec, _ b: Vec, _ c: Float) -> Vec { fmadd(Vec(repeating: c), a, b) }

@inline(__always) func expv(_ x: Vec) -> Vec { exp2v(x * 1.4426950408889634) }

/// 1 / (1 + e^-x).
@inline(__always) func sigmoidv(_ x: Vec) -> Vec { 1 / (1 + expv(-x)) }

/// erf(x), Abramowitz–Stegun 7.1.26 (absolute error ≤ 1.5e-7).
@inline(__always) func erfv(_ x: Vec) -> Vec {
    let sign = bits(x) & IVec(repeating: Int32(bitPattern: 0x8000_0000))
    let a = absv(x)
    let t = 1 / (1 + 0.3275911 * a)
    var p = Vec(repeating: 1.061405429)
    p = p * t - 1.453152027
    p = p * t + 1.421413741
    p = p * t - 0.284496736
    p = p * t + 0.254829592
    p = p * t
    let r = 1 - p * expv(-(a * a))
    return float(bits(r) | sign)
}


/// Loads `n` < 16 scalars into the low lanes of a zero vector.
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ n: Int) -> Vec {
    var v = Vec(repeating: 0)
    for i in 0..<n { v[i] = p[i] }
    return v
}

/// Stores the low `n` < 16 lanes of a vector.
@inline(__always) func storePartial(_ v: Vec, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = v[i] }
}

@inline(__always) func load(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}

@inline(__always) func store(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}

/// y[i] = f(x[i]) for i in 0..<n, 16 lanes at a time; the tail goes through the same vector function.
@inline(__always) func mapVectors(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                                  _ f: (Vec) -> Vec) {
    var i = 0
    while i + 16 <= n { store(f(load(x + i)), y + i); i += 16 }
    if i < n { storePartial(f(loadPartial(x + i, n - i)), y + i, n - i) }
}

/// z[i] = f(x[i], y[i]) for i in 0..<n.
@inline(__always) func mapVectors(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                  _ z: UnsafeMutablePointer<Float>, _ n: Int, _ f: (Vec, Vec) -> Vec) {
    var i = 0
    while i + 16 <= n { store(f(load(x + i), load(y + i)), z + i); i += 16 }
    if i < n { storePartial(f(loadPartial(x + i, n - i), loadPartial(y + i, n - i)), z + i, n - i) }
}

/// Loads k ≤ 16 scalars (a full vector when k == 16).
@inline(__always) func loadN(_ p: UnsafePointer<Float>, _ k: Int) -> Vec { k == 16 ? load(p) : loadPartial(p, k) }

/// Stores the low k ≤ 16 lanes.
@inline(__always) func storeN(_ v: Vec, _ p: UnsafeMutablePointer<Float>, _ k: Int) {
    if k == 16 { store(v, p) } else { storePartial(v, p, k) }
}

/// Calls body(offset, width) for the 16-wide column strips of 0..<n (the last may be narrower). Full
/// strips pass the literal 16, so after inlining `loadN`/`storeN` become plain vector loads and stores.
@inline(__always) func vectorColumns(_ n: Int, _ body: (Int, Int) -> Void) {
    var i = 0
    while i + 16 <= n { body(i, 16); i += 16 }
    if i < n { body(i, n - i) }
}
