// Throughput: the multiply-add rate of this instruction-set level, for `bench kernels`' "share of peak".
import TensorBase

/// Runs 16 independent chains of `iterations` SIMD16 multiply-adds (fused where the level has FMA) and
/// returns a value derived from them, so the work cannot be skipped. `bench` times it on each thread.
@inline(never)
public func multiplyAddChains(iterations: Int, seed: Float) -> Float {
    let m = Vec(repeating: 0.999_999), d = Vec(repeating: 1e-7)
    var a0 = Vec(repeating: seed), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3
    var a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9
    var a10 = a0 + 10, a11 = a0 + 11, a12 = a0 + 12, a13 = a0 + 13, a14 = a0 + 14, a15 = a0 + 15
    for _ in 0..<iterations {
        a0 = maddv(a0, m, d); a1 = maddv(a1, m, d); a2 = maddv(a2, m, d); a3 = maddv(a3, m, d)
        a4 = maddv(a4, m, d); a5 = maddv(a5, m, d); a6 = maddv(a6, m, d); a7 = maddv(a7, m, d)
        a8 = maddv(a8, m, d); a9 = maddv(a9, m, d); a10 = maddv(a10, m, d); a11 = maddv(a11, m, d)
        a12 = maddv(a12, m, d); a13 = maddv(a13, m, d); a14 = maddv(a14, m, d); a15 = maddv(a15, m, d)
    }
    let s = ((a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11) + (a12 + a13) + (a14 + a15))
    return hsum(s)
}
