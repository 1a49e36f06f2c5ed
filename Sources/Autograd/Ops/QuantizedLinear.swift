// The Linear map over a frozen 4-bit weight (QLoRA's base layer): y = x·Wᵀ + b with W held in bitsandbytes'
// NF4/FP4 format and decoded panel by panel inside the GEMM. The weight is a constant, never a gradient
// target; the VJP gives dX = g·W (through the same decoding GEMM) when x needs it, and db when b does.
import TensorCore

/// y = x·Wᵀ + b for x [..., in], a 4-bit W [out, in] and b [out] → y [..., out].
public func quantizedLinear(_ x: Variable, weight: FourBitTensor, bias: Variable?) throws -> Variable {
    let xv = x.value
    guard weight.shape.count == 2, let inFeatures = xv.shape.last, inFeatures == weight.shape[1] else {
        throw AutogradError.invalidInput("linear: input \(xv.shape) does not fit 4-bit weight \(weight.shape) ([out, in])")
    }
    let outFeatures = weight.shape[0], rows = xv.count / max(inFeatures, 1)
    if let bias, bias.shape != [outFeatures] {
        throw AutogradError.invalidInput("linear: bias \(bias.shape) does not fit 4-bit weight \(weight.shape)")
    }
    let y = try weight.linearForward(xv.reshapedUnchecked([rows, inFeatures]), bias: bias?.value)   // [rows, out]
    let outShape = Array(xv.shape.dropLast()) + [outFeatures], inShape = xv.shape
    let (nx, nb) = (x.requiresGrad, bias?.requiresGrad ?? false)
    let inputs = bias.map { [x, $0] } ?? [x], hasBias = bias != nil
    return Variable.result(y.reshapedUnchecked(outShape), of: "linear4bit", inputs: inputs) { g in
        let g2 = g.reshapedUnchecked([rows, outFeatures])                    // [rows, out]
        var grads: [Tensor?] = [nil]
        if nx {
            GradMode.note("linear4bit.dInput")
            grads[0] = try weight.linearInputGradient(g2).reshapedUnchecked(inShape)   // [rows, in]
        }
        if hasBias {
            if nb { GradMode.note("linear.dBias") }
            grads.append(nb ? try Reduction.sum(g2, axis: 0) : nil)          // [out]
        }
        return grads
    }
}
