// 2-D convolution over a frozen 4-bit weight (beyond bitsandbytes, which quantizes Linear layers only): the
// weight is kept in NF4/FP4 in the kernel's HWIO order and decoded sliver by sliver inside the convolution's
// GEMM, forward and for dX (the F32 weight never exists); the weight never gets a gradient.
import TensorCore

/// x [N, H, W, Cin] ⊛ a 4-bit weight [kh, kw, Cin, Cout] (+ bias [Cout]) → [N, Ho, Wo, Cout].
public func quantizedConv2d(_ x: Variable, weight: FourBitTensor, bias: Variable?, stride: Int = 1,
                            padding: Int = 0) throws -> Variable {
    guard weight.shape.count == 4 else {
        throw AutogradError.invalidInput("conv2d: 4-bit weight \(weight.shape) is not [kh, kw, Cin, Cout]")
    }
    let y = try weight.conv2dForward(x.value, bias: bias?.value, stride: stride, padding: padding)
    let (nx, nb) = (x.requiresGrad, bias?.requiresGrad ?? false)
    let inputs = bias.map { [x, $0] } ?? [x], hasBias = bias != nil, inShape = x.shape
    return Variable.result(y, of: "conv2d4bit", inputs: inputs) { g in
        var grads: [Tensor?] = [nil]
        if nx {
            GradMode.note("conv2d4bit.dInput")
            grads[0] = try weight.conv2dInputGradient(g, inputShape: inShape, stride: stride, padding: padding)
        }
        if hasBias {
            if nb { GradMode.note("conv2d.dBias") }
            grads.append(nb ? try conv2dBackwardBias(g) : nil)
        }
        return grads
    }
}
