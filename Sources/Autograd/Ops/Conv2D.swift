// 2-D convolution over NHWC activations with an HWIO weight ([kh, kw, Cin, Cout], the kernel's layout),
// with a VJP that computes dInput, dWeight and dBias only for the inputs that need them.
import TensorCore

/// x [N, H, W, Cin] ⊛ weight [kh, kw, Cin, Cout] (+ bias [Cout]) → [N, Ho, Wo, Cout]. With `bfloat16` (the same
/// weight packed by `BFloat16Weight.convolution`), the forward runs on BF16-rounded operands, and with
/// `bfloat16InputGradient` (`BFloat16Weight.convolutionInputGradient`, stride 1) so does dInput; then `weight.value`
/// may be empty (a layer holding its frozen weight in BF16 only) unless dInput needs the F32 path.
public func conv2d(_ x: Variable, weight: Variable, bias: Variable?, stride: Int = 1, padding: Int = 0,
                   bfloat16: BFloat16Weight? = nil, bfloat16InputGradient: BFloat16Weight? = nil) throws -> Variable {
    let w = weight.value
    let (kh, kw) = bfloat16.map { ($0.sourceShape[0], $0.sourceShape[1]) } ?? (w.shape[0], w.shape[1])
    let y = try bfloat16.map {
        try bfloat16Conv2d(x.value, weight: $0, kernelHeight: kh, kernelWidth: kw, bias: bias?.value,
                           stride: stride, padding: padding)
    } ?? TensorCore.conv2d(x.value, weight: w, bias: bias?.value, stride: stride, padding: padding)
    let (nx, nw, nb) = (x.requiresGrad, weight.requiresGrad, bias?.requiresGrad ?? false)
    let xv = nw ? x.value : Tensor(zeros: [0]), inShape = x.shape         // only dW reads the input
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight], hasBias = bias != nil
    return Variable.result(y, of: "conv2d", inputs: inputs) { g in
        var grads: [Tensor?] = [nil, nil]
        if nx {
            GradMode.note("conv2d.dInput")
            if let packed = bfloat16InputGradient, stride == 1 {
                grads[0] = try bfloat16Conv2dInputGradient(g, weight: packed, kernelHeight: kh, kernelWidth: kw,
                                                           inputShape: inShape, padding: padding)
            } else {
                grads[0] = try conv2dBackwardInput(g, weight: w, inputShape: inShape, stride: stride, padding: padding)
            }
        }
        if nw {
            GradMode.note("conv2d.dWeight")
            grads[1] = try conv2dBackwardWeight(g, input: xv, kernelHeight: w.shape[0], kernelWidth: w.shape[1],
                                                stride: stride, padding: padding)
        }
        if hasBias {
            if nb { GradMode.note("conv2d.dBias") }
            grads.append(nb ? try conv2dBackwardBias(g) : nil)
        }
        return grads
    }
}
