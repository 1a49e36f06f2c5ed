// A frozen Linear or convolution with one trainable LoRA pair folded into its weight for the call:
//
//     y = x·(W + s·B·A)ᵀ + b          (Linear: A = down [r, in], B = up [out, r])
//     y = x ⊛ (W + s·A·B) + b          (convolution, HWIO: A = down [k, k, in, r] as [k·k·in, r], B = up [1, 1, r, out])
//
// The same function as the branch form base(x) + s·up(down(x)), with fewer products. The branch form
// runs down, up and an add forward and, backward, up's and down's input gradients and another add; folded,
// forward is one product with W' = W + s·B·A (out·in·r multiply-adds to form, next to rows·out·r for up's
// product) and down's product (h = down(x), which dB needs), backward is one input gradient through W' and
// the two small products the pair's own gradients need:
//
//     g_h = s · g·B          dB = s · gᵀ·h          dA = down's weight gradient for g_h          dX through W'
//
// (Linear: dA = g_hᵀ·x and dX = g·W'; convolution: the 1×1 products over positions, dX the transposed convolution.)
//
// W' is formed again in backward rather than kept, so a step holds no second copy of the frozen weights.
import TensorCore

/// y = x·(W + scale·up·down)ᵀ + b for x [..., in], a frozen W [out, in], down [r, in], up [out, r] (the
/// Linear form of `LoRALinear`'s pair at weight·α/r = `scale`); gradients for x, down, up and the bias as
/// each needs one. The result equals `linear(x, W) + scale·linear(linear(x, down), up)` up to rounding.
public func foldedLoRALinear(_ x: Variable, weight: Tensor, bias: Variable?, down: Variable, up: Variable,
                             scale: Float) throws -> Variable {
    let xv = x.value
    guard weight.rank == 2, let inFeatures = xv.shape.last, inFeatures == weight.shape[1] else {
        throw AutogradError.invalidInput("foldedLoRALinear: input \(xv.shape) does not fit weight \(weight.shape) ([out, in])")
    }
    let outFeatures = weight.shape[0], r = down.shape.first ?? 0
    guard down.shape == [r, inFeatures], up.shape == [outFeatures, r], r > 0 else {
        throw AutogradError.invalidInput("foldedLoRALinear: pair down \(down.shape) / up \(up.shape) does not fit weight \(weight.shape)")
    }
    if let bias, bias.shape != [outFeatures] {
        throw AutogradError.invalidInput("foldedLoRALinear: bias \(bias.shape) does not fit weight \(weight.shape)")
    }
    let rows = xv.count / inFeatures
    let x2 = xv.reshapedUnchecked([rows, inFeatures])
    let (a, b) = (down.value, up.value)
    let folded = foldedLinearWeight(weight, down: a, up: b, scale: scale)
    let y = try bias.map { affine(x2, folded, $0.value) } ?? TensorCore.matmul(x2, folded, transposeB: true)
    let (nx, na, nb, nbias) = (x.requiresGrad, down.requiresGrad, up.requiresGrad, bias?.requiresGrad ?? false)
    // dB reads s·h; dA reads x.
    let scaledH = nb ? Elementwise.scale(try TensorCore.matmul(x2, a, transposeB: true), by: scale) : Tensor(zeros: [0])   // [rows, r]
    let savedX = na ? x2 : Tensor(zeros: [0])
    let inShape = xv.shape, outShape = Array(xv.shape.dropLast()) + [outFeatures]
    let inputs = [x, down, up] + (bias.map { [$0] } ?? [])
    return Variable.result(y.reshapedUnchecked(outShape), of: "foldedLoRALinear", inputs: inputs) { g in
        let g2 = g.reshapedUnchecked([rows, outFeatures])
        var grads: [Tensor?] = [nil, nil, nil]
        if nx {
            GradMode.note("foldedLoRALinear.dInput")
            grads[0] = try TensorCore.matmul(g2, foldedLinearWeight(weight, down: a, up: b, scale: scale)).reshapedUnchecked(inShape)
        }
        if na {
            GradMode.note("foldedLoRALinear.dDown")
            let gh = try TensorCore.matmul(g2, b)                                          // [rows, r]
            grads[1] = Elementwise.scale(try TensorCore.matmul(gh, savedX, transposeA: true), by: scale)   // [r, in]
        }
        if nb {
            GradMode.note("foldedLoRALinear.dUp")
            grads[2] = try TensorCore.matmul(g2, scaledH, transposeA: true)                // [out, r]
        }
        if bias != nil { grads.append(nbias ? try Reduction.sum(g2, axis: 0) : nil) }
        return grads
    }
}

/// x [N, H, W, in] ⊛ (W + scale·down·up) + b for a frozen HWIO W [k, k, in, out], down [k, k, in, r] (the base's
/// stride and padding) and up [1, 1, r, out] (`LoRAConv`'s pair at weight·α/r = `scale`); gradients for x,
/// down, up and the bias as each needs one. Equals `conv2d(x, W) + scale·conv2d(conv2d(x, down), up)` up to
/// rounding.
public func foldedLoRAConv2d(_ x: Variable, weight: Tensor, bias: Variable?, down: Variable, up: Variable,
                             scale: Float, stride: Int, padding: Int) throws -> Variable {
    guard weight.rank == 4, down.shape.count == 4, up.shape.count == 4,
          Array(down.shape[0..<3]) == Array(weight.shape[0..<3]), up.shape[0] == 1, up.shape[1] == 1,
          up.shape[2] == down.shape[3], up.shape[3] == weight.shape[3], down.shape[3] > 0 else {
        throw AutogradError.invalidInput("foldedLoRAConv2d: pair down \(down.shape) / up \(up.shape) does not fit weight \(weight.shape) (HWIO)")
    }
    let (k, outChannels) = (weight.shape[0], weight.shape[3])
    if let bias, bias.shape != [outChannels] {
        throw AutogradError.invalidInput("foldedLoRAConv2d: bias \(bias.shape) does not fit weight \(weight.shape)")
    }
    let (a, b) = (down.value, up.value)
    let folded = foldedConvWeight(weight, down: a, up: b, scale: scale)
    let y = try TensorCore.conv2d(x.value, weight: folded, bias: bias?.value, stride: stride, padding: padding)
    let (nx, na, nb, nbias) = (x.requiresGrad, down.requiresGrad, up.requiresGrad, bias?.requiresGrad ?? false)
    let scaledH = nb ? Elementwise.scale(try TensorCore.conv2d(x.value, weight: a, bias: nil, stride: stride, padding: padding),
                                         by: scale)
                     : Tensor(zeros: [0])                                                   // [N, Ho, Wo, r]
    let savedX = na ? x.value : Tensor(zeros: [0]), inShape = x.shape
    let r = a.shape[3], positions = y.count / max(outChannels, 1)
    let inputs = [x, down, up] + (bias.map { [$0] } ?? [])
    return Variable.result(y, of: "foldedLoRAConv2d", inputs: inputs) { g in
        let g2 = g.reshapedUnchecked([positions, outChannels])
        var grads: [Tensor?] = [nil, nil, nil]
        if nx {
            GradMode.note("foldedLoRAConv2d.dInput")
            grads[0] = try conv2dBackwardInput(g, weight: foldedConvWeight(weight, down: a, up: b, scale: scale),
                                               inputShape: inShape, stride: stride, padding: padding)
        }
        if na {
            GradMode.note("foldedLoRAConv2d.dDown")
            let gh = try TensorCore.matmul(g2, b.reshapedUnchecked([r, outChannels]), transposeB: true)   // [P, r]
            let dA = try conv2dBackwardWeight(gh.reshapedUnchecked(Array(g.shape.dropLast()) + [r]), input: savedX,
                                              kernelHeight: k, kernelWidth: k, stride: stride, padding: padding)
            grads[1] = Elementwise.scale(dA, by: scale)                                   // [k, k, in, r]
        }
        if nb {
            GradMode.note("foldedLoRAConv2d.dUp")
            grads[2] = try TensorCore.matmul(scaledH.reshapedUnchecked([positions, r]), g2, transposeA: true)
                .reshapedUnchecked([1, 1, r, outChannels])
        }
        if bias != nil { grads.append(nbias ? try conv2dBackwardBias(g) : nil) }
        return grads
    }
}

/// W + s·B·A for W [out, in], A [r, in], B [out, r]: a copy of W that one GEMM (β = 1) accumulates onto.
private func foldedLinearWeight(_ w: Tensor, down a: Tensor, up b: Tensor, scale: Float) -> Tensor {
    let (out, inFeatures, r) = (w.shape[0], w.shape[1], a.shape[0])
    return accumulated(onto: w) { c in
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                sgemm(transA: false, transB: false, m: out, n: inFeatures, k: r, alpha: scale, a: pb.baseAddress!, lda: r,
                      b: pa.baseAddress!, ldb: inFeatures, beta: 1, c: c, ldc: inFeatures)
            }
        }
    }
}

/// W + s·A·B for HWIO W [k, k, in, out], A [k, k, in, r] as [k·k·in, r], B [1, 1, r, out] as [r, out].
private func foldedConvWeight(_ w: Tensor, down a: Tensor, up b: Tensor, scale: Float) -> Tensor {
    let (r, out) = (a.shape[3], w.shape[3]), taps = w.count / max(out, 1)
    return accumulated(onto: w) { c in
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                sgemm(transA: false, transB: false, m: taps, n: out, k: r, alpha: scale, a: pa.baseAddress!, lda: r,
                      b: pb.baseAddress!, ldb: out, beta: 1, c: c, ldc: out)
            }
        }
    }
}

private func accumulated(onto w: Tensor, _ body: (UnsafeMutablePointer<Float>) -> Void) -> Tensor {
    Tensor(shape: w.shape) { out in
        w.withUnsafeBufferPointer { pw in out.baseAddress!.update(from: pw.baseAddress!, count: w.count) }
        body(out.baseAddress!)
    }
}
