// NativeRandom: a counter-based Philox4x32-10 generator (Salmon et al., "Parallel random numbers: as
// easy as 1, 2, 3", SC'11) with uniform and normal tensor fills.
//
// The whole state is (seed, offset): block i of the stream is Philox(key = seed, counter = i), four
// 32-bit words. A fill of n values reads blocks offset ..< offset + ⌈n/4⌉ and advances offset, so value
// k of a fill depends only on (seed, offset, k): fills are the same for every thread count, and saving
// the struct (it is Codable) and restoring it resumes the stream exactly.

import Foundation

/// Philox4x32-10 random stream; a value type passed explicitly to whatever needs randomness.
public struct PhiloxRandom: RandomNumberGenerator, Codable, Equatable, Sendable {
    /// The key of the stream.
    public var seed: UInt64
    /// Number of 128-bit blocks consumed so far.
    public var offset: UInt64

    public init(seed: UInt64, offset: UInt64 = 0) {
        self.seed = seed
        self.offset = offset
    }

    /// Block `index` of the stream with key `seed`: Philox4x32 with 10 rounds.
    @inline(__always) public static func block(seed: UInt64, index: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: index), c1 = UInt32(truncatingIfNeeded: index >> 32)
        var c2: UInt32 = 0, c3: UInt32 = 0
        var k0 = UInt32(truncatingIfNeeded: seed), k1 = UInt32(truncatingIfNeeded: seed >> 32)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0), p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let n0 = UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0
            let n2 = UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1
            c1 = UInt32(truncatingIfNeeded: p1); c3 = UInt32(truncatingIfNeeded: p0)
            c0 = n0; c2 = n2
            k0 &+= 0x9E37_79B9; k1 &+= 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }

    /// 64 random bits (one block per call; words 0 and 1).
    public mutating func next() -> UInt64 {
        let b = Self.block(seed: seed, index: offset)
        offset &+= 1
        return UInt64(b.0) | UInt64(b.1) << 32
    }

    /// Fills `t` with values uniform in [low, high) (24-bit resolution).
    public mutating func fillUniform(_ t: inout Tensor, low: Float = 0, high: Float = 1) {
        let n = t.count, seed = seed, base = offset
        let span = high - low
        t.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            Self.forBlocks(n) { i in
                let b = Self.block(seed: seed, index: base &+ UInt64(i))
                let words = SIMD4<UInt32>(b.0, b.1, b.2, b.3)
                for k in 0..<min(4, n - 4 * i) { p[4 * i + k] = low + span * Float(words[k] >> 8) * 0x1p-24 }
            }
        }
        offset &+= UInt64((n + 3) / 4)
    }

    /// Fills `t` with normal values (Box–Muller in Double on the block's two word pairs).
    public mutating func fillNormal(_ t: inout Tensor, mean: Float = 0, std: Float = 1) {
        let n = t.count, seed = seed, base = offset
        t.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            Self.forBlocks(n) { i in
                let b = Self.block(seed: seed, index: base &+ UInt64(i))
                let (z0, z1) = boxMuller(b.0, b.1), (z2, z3) = boxMuller(b.2, b.3)
                let z = SIMD4<Double>(z0, z1, z2, z3)
                for k in 0..<min(4, n - 4 * i) { p[4 * i + k] = mean + std * Float(z[k]) }
            }
        }
        offset &+= UInt64((n + 3) / 4)
    }

    /// A new tensor of uniform values in [low, high).
    public mutating func uniform(shape: [Int], low: Float = 0, high: Float = 1) -> Tensor {
        var t = Tensor(uninitializedShape: shape)
        fillUniform(&t, low: low, high: high)
        return t
    }

    /// A new tensor of normal values.
    public mutating func normal(shape: [Int], mean: Float = 0, std: Float = 1) -> Tensor {
        var t = Tensor(uninitializedShape: shape)
        fillNormal(&t, mean: mean, std: std)
        return t
    }

    /// Calls body(block) for every 4-value block of an n-value fill, over the threads in fixed slices.
    static func forBlocks(_ n: Int, _ body: (Int) -> Void) {
        let blocks = (n + 3) / 4
        Parallel.forEachChunked(count: blocks, workers: Parallel.workers(for: blocks, minWorkPerThread: 4096), body)
    }
}

/// Two independent standard normals from two 32-bit words: u1 in (0, 1], u2 in [0, 1).
@inline(__always) func boxMuller(_ a: UInt32, _ b: UInt32) -> (Double, Double) {
    let u1 = (Double(a) + 1) * 0x1p-32, u2 = Double(b) * 0x1p-32
    let r = (-2 * log(u1)).squareRoot(), th = 2 * Double.pi * u2
    return (r * cos(th), r * sin(th))
}
