// Conv2D: 2-D convolution over NHWC activations, forward and backward, as implicit GEMM.
//
// Layouts: input `[N, H, W, Cin]`, output `[N, Ho, Wo, Cout]`, weight `[kh, kw, Cin, Cout]` (each tap is a
// Cin x Cout GEMM operand; ConvLayout.swift converts from/to the checkpoint's OIHW), bias `[Cout]`.
// `Ho = (H + 2p - kh) / s + 1`, likewise `Wo`.
//
// Forward (PERFORMANCE.md §5): the input is zero-padded once. For stride 1 the output is computed on the
// padded-width grid (Ho x Wp positions per image; the kw - 1 extra columns per row are computed and dropped),
// so the MR rows of a microkernel call are MR consecutive padded pixels and tap (dy, dx) is just the offset
// `dy*Wp + dx` pixels: `A = xpad + (p + dy*Wp + dx)*Cin`, `lda = Cin`. For stride s the tiles stay inside
// one output row and `lda = s*Cin`. The taps x Cin blocks form the K loop of each C tile; no im2col buffer.
// Backward input is the same kernel on the (dilated, re-padded) output gradient with flipped, transposed
// weights; backward weight is one GEMM per tap (`dW[tap] = Xshiftedᵀ · dY`).
import TensorBase


/// Convolution forward: `[N, H, W, Cin]` * `[kh, kw, Cin, Cout]` (+ bias `[Cout]`) -> `[N, Ho, Wo, Cout]`.
public func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) throws -> Tensor {
    let g = try Conv2DShape(input: input.shape, weight: weight.shape, stride: stride, padding: padding, op: "conv2d")
    if let bias, bias.shape != [g.outChannels] {
        throw TensorError.shapeMismatch("conv2d: bias \(bias.shape) does not fit weight \(weight.shape)")
    }
    return input.withUnsafeBufferPointer { x in
        weight.withUnsafeBufferPointer { w in
            withOptionalPointer(bias) { b in
                Tensor(shape: g.outputShape) { out in
                    conv2dForward(g, input: x.baseAddress!, weight: w.baseAddress!, bias: b, output: out.baseAddress!)
                }
            }
        }
    }
}

/// Gradient of `conv2d` with respect to its input, given the output gradient `[N, Ho, Wo, Cout]`.
public func conv2dBackwardInput(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], stride: Int = 1,
                                padding: Int = 0) throws -> Tensor {
    let g = try Conv2DShape(input: inputShape, weight: weight.shape, stride: stride, padding: padding,
                            op: "conv2dBackwardInput")
    guard gradOutput.shape == g.outputShape else {
        throw TensorError.shapeMismatch("conv2dBackwardInput: output gradient \(gradOutput.shape) should be "
                                        + "\(g.outputShape) for \(g)")
    }
    return gradOutput.withUnsafeBufferPointer { dy in
        weight.withUnsafeBufferPointer { w in
            Tensor(shape: inputShape) { dx in
                conv2dBackwardInput(g, gradOutput: dy.baseAddress!, weight: w.baseAddress!, gradInput: dx.baseAddress!)
            }
        }
    }
}

/// Gradient of `conv2d` with respect to its weight: `[kh, kw, Cin, Cout]`.
public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, kernelHeight: Int, kernelWidth: Int,
                                 stride: Int = 1, padding: Int = 0) throws -> Tensor {
    let wShape = [kernelHeight, kernelWidth, input.shape.last ?? 0, gradOutput.shape.last ?? 0]
    let g = try Conv2DShape(input: input.shape, weight: wShape, stride: stride, padding: padding,
                            op: "conv2dBackwardWeight")
    guard gradOutput.shape == g.outputShape else {
        throw TensorError.shapeMismatch("conv2dBackwardWeight: output gradient \(gradOutput.shape) should be "
                                        + "\(g.outputShape) for \(g)")
    }
    return gradOutput.withUnsafeBufferPointer { dy in
        input.withUnsafeBufferPointer { x in
            Tensor(shape: wShape) { dw in
                conv2dBackwardWeight(g, input: x.baseAddress!, gradOutput: dy.baseAddress!, gradWeight: dw.baseAddress!)
            }
        }
    }
}

/// Gradient of `conv2d` with respect to its bias: the output gradient summed over N, Ho, Wo -> `[Cout]`.
public func conv2dBackwardBias(_ gradOutput: Tensor) throws -> Tensor {
    guard gradOutput.rank == 4 else {
        throw TensorError.shapeMismatch("conv2dBackwardBias: output gradient must be [N, Ho, Wo, Cout], got \(gradOutput.shape)")
    }
    let c = gradOutput.shape[3], rows = gradOutput.count / max(c, 1)
    return gradOutput.withUnsafeBufferPointer { dy in
        Tensor(shape: [c]) { db in sumRows(dy.baseAddress!, rows: rows, cols: c, into: db.baseAddress!) }
    }
}

func withOptionalPointer<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let t else { return body(nil) }
    return t.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// `out[c] = sum_r x[r*cols + c]` (vectorised along c).
func sumRows(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
    out.update(repeating: 0, count: cols)
    for r in 0..<rows {
        let row = x + r * cols
        for c in 0..<cols { out[c] += row[c] }
    }
}
