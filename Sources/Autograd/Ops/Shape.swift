// Shape and layout operations: reshape (shares storage), permute, channel concat/split, nearest ×2 upsampling.
import TensorCore

/// Same elements, another shape with the same element count.
public func reshape(_ x: Variable, _ shape: [Int]) throws -> Variable {
    let y = try x.value.reshaped(shape)
    let original = x.shape
    return Variable.result(y, of: "reshape", inputs: [x]) { g in [g.reshapedUnchecked(original)] }
}

/// Dimensions reordered: y.shape[i] = x.shape[dims[i]]; the VJP applies the inverse permutation.
public func permute(_ x: Variable, _ dims: [Int]) throws -> Variable {
    let y = try Layout.permute(x.value, dims)
    let inverse = Layout.inversePermutation(dims)
    return Variable.result(y, of: "permute", inputs: [x]) { g in [try Layout.permute(g, inverse)] }
}

/// Concatenation along the last (channel) dimension; leading dimensions must agree.
public func concatChannels(_ parts: [Variable]) throws -> Variable {
    let y = try Layout.concatLastDim(parts.map(\.value))
    let sizes = parts.map { $0.shape.last ?? 0 }
    return Variable.result(y, of: "concatChannels", inputs: parts) { g in
        try Layout.splitLastDim(g, sizes: sizes)
    }
}

/// Consecutive pieces of the last dimension with the given sizes (they must add up to it).
public func splitChannels(_ x: Variable, sizes: [Int]) throws -> [Variable] {
    let pieces = try Layout.splitLastDim(x.value, sizes: sizes)
    return pieces.indices.map { i in
        Variable.result(pieces[i], of: "splitChannels", inputs: [x]) { g in
            // Zero gradients for the other pieces, this piece's gradient in its place.
            let parts = sizes.indices.map { j in j == i ? g : Tensor(zeros: Array(g.shape.dropLast()) + [sizes[j]]) }
            return [try Layout.concatLastDim(parts)]
        }
    }
}

/// Nearest-neighbour ×2 upsampling of x [N, H, W, C] → [N, 2H, 2W, C].
public func upsampleNearest2x(_ x: Variable) throws -> Variable {
    let y = try Layout.upsampleNearest2x(x.value)
    return Variable.result(y, of: "upsampleNearest2x", inputs: [x]) { g in [try Layout.upsampleNearest2xBackward(g)] }
}
