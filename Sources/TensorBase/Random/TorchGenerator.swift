// TorchGenerator: PyTorch's CPU random generator, reproduced bit for bit.
//
// This implementation matches `torch.Generator("cpu").manual_seed(seed)` followed by `torch.randn` /
// `torch.rand` in float32 (torch 2.x, `aten/src/ATen/core/MT19937RNGEngine.h`,
// `ATen/core/DistributionsHelper.h`, `ATen/native/cpu/DistributionTemplates.h`):
//   * the engine is MT19937 seeded with the low 32 bits of the seed (`init_genrand`);
//   * a float uniform is `(u32 & 0xFFFFFF) · 2⁻²⁴`; a double uniform takes the low 53 bits of
//     `(u32₁ << 32) | u32₂`;
//   * `randn` of n ≥ 16 elements first fills all n float uniforms, then applies Box–Muller to each
//     block of 16 (uniforms j and j+8 give outputs j and j+8); when n is not a multiple of 16 it
//     draws 16 fresh uniforms for the last 16 elements and transforms them again;
//   * `randn` of n < 16 elements draws each value in double from two double uniforms, keeping the
//     second Box–Muller value for the next scalar draw (that cache is part of the state).
// PyTorch's x86 builds (AVX2 and AVX-512 dispatch alike) run the 16-element Box–Muller through
// `avx_mathfun.h` (Cephes `log256_ps` / `sincos256_ps`) compiled with FMA contraction; `CephesFloat`
// below reproduces that instruction sequence lane by lane (read from libtorch_cpu's
// `NormalFill16<float>` code), so results are bit-identical to `torch.randn` on x86. PyTorch's
// portable build (`ATEN_CPU_CAPABILITY=default`, non-x86) uses libm `logf`/`sinf`/`cosf` instead and
// can differ from this in the last bit.

import Foundation

/// PyTorch-compatible CPU generator (MT19937 + PyTorch's normal/uniform sampling paths).
///
/// A value type: copying it saves its state, assigning a copy back restores it.
public struct TorchGenerator: Sendable, Equatable, Codable {
    static let stateSize = 624
    static let shift = 397

    /// The seed given to `init(seed:)` (what `torch.Generator.initial_seed()` returns).
    public let seed: UInt64
    private var words: [UInt32]
    private var next: Int
    /// Second value of the last scalar (double) Box–Muller pair, used by the next scalar draw.
    private var cachedNormal: Double?

    /// Same as `torch.Generator("cpu").manual_seed(seed)`.
    public init(seed: UInt64) {
        self.seed = seed
        var w = [UInt32](repeating: 0, count: Self.stateSize)
        w[0] = UInt32(truncatingIfNeeded: seed)
        for j in 1..<Self.stateSize {
            w[j] = 1_812_433_253 &* (w[j - 1] ^ (w[j - 1] >> 30)) &+ UInt32(j)
        }
        words = w
        next = Self.stateSize
        cachedNormal = nil
    }

    // MARK: - Engine

    /// The next raw 32-bit output (`CPUGeneratorImpl::random`).
    public mutating func nextUInt32() -> UInt32 {
        if next == Self.stateSize { twist() }
        var y = words[next]
        next += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// Two outputs combined high-first (`CPUGeneratorImpl::random64`).
    public mutating func nextUInt64() -> UInt64 {
        let hi = UInt64(nextUInt32())
        let lo = UInt64(nextUInt32())
        return hi << 32 | lo
    }

    private mutating func twist() {
        let n = Self.stateSize, m = Self.shift
        words.withUnsafeMutableBufferPointer { w in
            for k in 0..<n {
                let y = (w[k] & 0x8000_0000) | (w[(k + 1) % n] & 0x7FFF_FFFF)
                w[k] = w[(k + m) % n] ^ (y >> 1) ^ ((w[(k + 1) % n] & 1) != 0 ? 0x9908_B0DF : 0)
            }
        }
        next = 0
    }

    // MARK: - Uniforms

    /// One float uniform in [0, 1) (`at::uniform_real_distribution<float>`).
    @inline(__always) mutating func uniformFloat() -> Float {
        Float(nextUInt32() & 0xFF_FFFF) * (1.0 / 16_777_216.0)
    }

    /// One double uniform in [0, 1) (`at::uniform_real_distribution<double>`).
    @inline(__always) mutating func uniformDouble() -> Double {
        Double(nextUInt64() & 0x1F_FFFF_FFFF_FFFF) * (1.0 / 9_007_199_254_740_992.0)
    }

    // MARK: - Normals

    /// One standard normal from the scalar path (`at::normal_distribution<double>`), as float.
    mutating func scalarNormal() -> Float {
        if let cached = cachedNormal {
            cachedNormal = nil
            return Float(cached)
        }
        let u1 = uniformDouble()
        let u2 = uniformDouble()
        let r = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = r * sin(theta)
        return Float(r * cos(theta))
    }

    /// Box–Muller on 16 uniforms in place: uniforms j and j+8 become normals j and j+8.
    @inline(__always) static func normalFill16(_ d: UnsafeMutablePointer<Float>) {
        let twoPi = Float(2.0 * Double.pi)
        for j in 0..<8 {
            let radius = (-2 * CephesFloat.log(1 - d[j])).squareRoot()
            let (s, c) = CephesFloat.sincos(twoPi * d[j + 8])
            d[j] = Float(0).addingProduct(radius * c, 1)
            d[j + 8] = Float(0).addingProduct(radius * s, 1)
        }
    }

    /// Fills `out` with standard normals exactly as `torch.randn` fills a contiguous float tensor
    /// with `out.count` elements.
    public mutating func fillNormal(_ out: UnsafeMutableBufferPointer<Float>) {
        let n = out.count
        guard let d = out.baseAddress, n > 0 else { return }
        if n < 16 {
            for i in 0..<n { d[i] = scalarNormal() }
            return
        }
        for i in 0..<n { d[i] = uniformFloat() }
        var i = 0
        while i + 16 <= n {
            Self.normalFill16(d + i)
            i += 16
        }
        if n % 16 != 0 {
            let tail = d + (n - 16)
            for k in 0..<16 { tail[k] = uniformFloat() }
            Self.normalFill16(tail)
        }
    }

    /// Fills `out` with uniforms in [0, 1) exactly as `torch.rand` does for a float tensor.
    public mutating func fillUniform(_ out: UnsafeMutableBufferPointer<Float>) {
        for i in out.indices { out[i] = uniformFloat() }
    }

    /// `torch.randn(shape, generator=g)` (float32, row-major).
    public mutating func randn(_ shape: [Int]) -> Tensor {
        var t = Tensor(uninitializedShape: shape)
        t.withUnsafeMutableBufferPointer { fillNormal($0) }
        return t
    }

    /// `torch.rand(shape, generator=g)` (float32, row-major).
    public mutating func rand(_ shape: [Int]) -> Tensor {
        var t = Tensor(uninitializedShape: shape)
        t.withUnsafeMutableBufferPointer { fillUniform($0) }
        return t
    }
}

/// Cephes single-precision `log` and `sincos` as compiled in PyTorch's `avx_mathfun.h` (gcc with FMA
/// contraction): the fused operations below are exactly the ones in the shipped machine code.
enum CephesFloat {
    // Constants are C double literals rounded to float, as the C++ source declares them.
    static let sqrtHalf = Float(0.707106781186547524 as Double)
    static let logP: [Float] = [7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1,
                                1.4249322787E-1, -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1,
                                3.3333331174E-1].map { Float($0 as Double) }
    static let logQ1 = Float(-2.12194440e-4 as Double)
    static let logQ2 = Float(0.693359375 as Double)
    static let fourOverPi = Float(1.27323954473516 as Double)
    static let dp1 = Float(-0.78515625 as Double)
    static let dp2 = Float(-2.4187564849853515625e-4 as Double)
    static let dp3 = Float(-3.77489497744594108e-8 as Double)
    static let sinP: [Float] = [-1.9515295891E-4, 8.3321608736E-3, -1.6666654611E-1].map { Float($0 as Double) }
    static let cosP: [Float] = [2.443315711809948E-005, -1.388731625493765E-003, 4.166664568298827E-002]
        .map { Float($0 as Double) }

    /// Natural logarithm of a positive normal float (`log256_ps`).
    @inline(__always) static func log(_ v: Float) -> Float {
        let bits = v.bitPattern
        var x = Float(bitPattern: (bits & ~0x7F80_0000) | Float(0.5).bitPattern)  // mantissa in [0.5, 1)
        var e = Float(Int32(bitPattern: bits >> 23) - 0x7F) + 1
        let small = x < sqrtHalf
        e -= small ? 1 : 0
        x = (x + -1) + (small ? x : 0)
        let z = x * x
        var y = logP[0]
        for k in 1..<9 { y = logP[k].addingProduct(y, x) }
        y = (e * logQ1).addingProduct(x * y, z)
        y = y.addingProduct(-z, 0.5)
        return (x + y).addingProduct(e, logQ2)
    }

    /// Sine and cosine of one float (`sincos256_ps`).
    @inline(__always) static func sincos(_ v: Float) -> (sin: Float, cos: Float) {
        var x = abs(v)
        let sinSign = v.bitPattern & 0x8000_0000
        let j = (Int32(x * fourOverPi) &+ 1) & ~1
        let yj = Float(j)
        let sinSwap = UInt32(bitPattern: j & 4) << 29
        let cosSign = UInt32(bitPattern: ~(j &- 2) & 4) << 29
        let firstOctant = (j & 2) == 0
        x = x.addingProduct(yj, dp1)
        x = x.addingProduct(dp2, yj)
        x = x.addingProduct(yj, dp3)
        let z = x * x
        var c = cosP[1].addingProduct(cosP[0], z)
        c = cosP[2].addingProduct(c, z)
        c = (-(z * 0.5)).addingProduct(z, z * c) + 1
        var s = sinP[1].addingProduct(sinP[0], z)
        s = sinP[2].addingProduct(s, z)
        s = x.addingProduct(x, z * s)
        let sinValue = firstOctant ? s : c
        let cosValue = firstOctant ? c : s
        return (Float(bitPattern: sinValue.bitPattern ^ sinSign ^ sinSwap),
                Float(bitPattern: cosValue.bitPattern ^ cosSign))
    }
}
