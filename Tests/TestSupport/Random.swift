// Reproducible test inputs that do not depend on the library's own generators.
import TensorCore

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny deterministic generator for test data.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A reproducible tensor with entries in [-1, 1) (SplitMix64 on `seed`, 24 bits per entry).
public func uniformTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var random = SplitMix64(seed: seed &* 0x2545_F491_4F6C_DD1D)
    return Tensor(shape: shape) { b in
        for i in b.indices { b[i] = Float(Double(random.next() >> 40) / Double(1 << 24)) * 2 - 1 }
    }
}
