import TensorCore

/// A tensor as comparable bits (rank, shape, then every float's bit pattern): equal means bitwise equal.
func bitPattern(_ t: Tensor?) -> [UInt32] {
    guard let t else { return [] }
    return [UInt32(t.shape.count)] + t.shape.map { UInt32($0) } + t.withUnsafeBufferPointer { $0.map(\.bitPattern) }
}

/// `bitPattern` of every tensor of a state dict.
func bitPatterns(_ d: [String: Tensor]) -> [String: [UInt32]] { d.mapValues { bitPattern($0) } }
