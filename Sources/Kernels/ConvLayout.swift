// ConvLayout: converters between the checkpoint's layouts (NCHW activations, OIHW conv weights) and the
// internal ones (NHWC activations, `[kh, kw, Cin, Cout]` conv weights). Used once at the edges.
import TensorBase

/// `[Cout, Cin, kh, kw]` (PyTorch / safetensors) -> `[kh, kw, Cin, Cout]` (Conv2D's weight layout).
public func convWeightFromOIHW(_ weight: Tensor) throws -> Tensor {
    try permuted4D(weight, [2, 3, 1, 0], op: "convWeightFromOIHW", expected: "[Cout, Cin, kh, kw]")
}

/// `[kh, kw, Cin, Cout]` -> `[Cout, Cin, kh, kw]` (for saving or comparing with PyTorch).
public func convWeightToOIHW(_ weight: Tensor) throws -> Tensor {
    try permuted4D(weight, [3, 2, 0, 1], op: "convWeightToOIHW", expected: "[kh, kw, Cin, Cout]")
}

/// `[N, C, H, W]` -> `[N, H, W, C]`.
public func nchwToNHWC(_ x: Tensor) throws -> Tensor {
    try permuted4D(x, [0, 2, 3, 1], op: "nchwToNHWC", expected: "[N, C, H, W]")
}

/// `[N, H, W, C]` -> `[N, C, H, W]`.
public func nhwcToNCHW(_ x: Tensor) throws -> Tensor {
    try permuted4D(x, [0, 3, 1, 2], op: "nhwcToNCHW", expected: "[N, H, W, C]")
}

/// `out[i0, i1, i2, i3] = x[...]` where output dimension d is input dimension `perm[d]`.
private func permuted4D(_ x: Tensor, _ perm: [Int], op: String, expected: String) throws -> Tensor {
    guard x.rank == 4 else { throw TensorError.shapeMismatch("\(op): expected a 4-D \(expected) tensor, got \(x.shape)") }
    let inShape = x.shape
    let outShape = perm.map { inShape[$0] }
    var inStrides = [1, 1, 1, 1]
    for d in stride(from: 2, through: 0, by: -1) { inStrides[d] = inStrides[d + 1] * inShape[d + 1] }
    let s = perm.map { inStrides[$0] }
    let (d1, d2, d3) = (outShape[1], outShape[2], outShape[3])
    return x.withUnsafeBufferPointer { src in
        Tensor(shape: outShape) { dst in
            let sp = src.baseAddress!, dp = dst.baseAddress!
            Parallel.forEach(count: outShape[0] * d1, workers: Parallel.workers(for: x.count, minWorkPerThread: 1 << 20)) { r in
                let i0 = r / d1, i1 = r % d1
                var o = r * d2 * d3
                for i2 in 0..<d2 {
                    let base = i0 * s[0] + i1 * s[1] + i2 * s[2]
                    for i3 in 0..<d3 {
                        dp[o] = sp[base + i3 * s[3]]
                        o += 1
                    }
                }
            }
        }
    }
}
