// Throughput: the multiply-add rate of this instruction-set level, for `bench kernels`' "share of peak".
import TensorBase

#if KERNELS_AVX512
/// 16 accumulators of one zmm register each (of 32).
typealias ChainVec = SIMD16<Float>
#elseif KERNELS_AVX2
/// 12 accumulators of one ymm register each (of 16).
typealias ChainVec = SIMD8<Float>
#else
/// 12 accumulators of one xmm / NEON register each (of 16 / 32).
typealias ChainVec = SIMD4<Float>
#endif

/// Runs 12 (AVX-512: 16) independent chains of `iterations` register-wide multiply-adds (fused where the level
/// has FMA) and returns a value derived from them, so the work cannot be skipped, and the flops done.
@inline(never)
public func multiplyAddChains(iterations: Int, seed: Float) -> (checksum: Float, flops: Double) {
    let m = ChainVec(repeating: 0.999_999), d = ChainVec(repeating: 1e-7)
    var a0 = ChainVec(repeating: seed), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3
    var a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9
    var a10 = a0 + 10, a11 = a0 + 11
#if KERNELS_AVX512
    var a12 = a0 + 12, a13 = a0 + 13, a14 = a0 + 14, a15 = a0 + 15
    let chains = 16
#else
    let chains = 12
#endif
    for _ in 0..<iterations {
        a0 = chainMadd(a0, m, d); a1 = chainMadd(a1, m, d); a2 = chainMadd(a2, m, d); a3 = chainMadd(a3, m, d)
        a4 = chainMadd(a4, m, d); a5 = chainMadd(a5, m, d); a6 = chainMadd(a6, m, d); a7 = chainMadd(a7, m, d)
        a8 = chainMadd(a8, m, d); a9 = chainMadd(a9, m, d); a10 = chainMadd(a10, m, d); a11 = chainMadd(a11, m, d)
#if KERNELS_AVX512
        a12 = chainMadd(a12, m, d); a13 = chainMadd(a13, m, d); a14 = chainMadd(a14, m, d); a15 = chainMadd(a15, m, d)
#endif
    }
    var s = ((a0 + a1) + (a2 + a3) + (a4 + a5)) + ((a6 + a7) + (a8 + a9) + (a10 + a11))
#if KERNELS_AVX512
    s += (a12 + a13) + (a14 + a15)
#endif
    var checksum = Float(0)
    for i in 0..<ChainVec.scalarCount { checksum += s[i] }
    return (checksum, Double(iterations * chains * ChainVec.scalarCount * 2))
}

/// c + a·b on one register: fused where the level has FMA; a multiply and an add on x86-64's SSE2 baseline.
@inline(__always) private func chainMadd(_ c: ChainVec, _ a: ChainVec, _ b: ChainVec) -> ChainVec {
#if KERNELS_PORTABLE && (arch(x86_64) || arch(i386))
    return c + a * b
#else
    return c.addingProduct(a, b)
#endif
}
