// Gradient-norm clipping: scales all gradients together so that their joint L2 norm is at most a bound,
// as torch.nn.utils.clip_grad_norm_: Σ Double(g)² in Double, factor maxNorm / (norm + 1e-6), applied whenever
// it is below 1. Parameters without a gradient are skipped.
import Autograd
import Foundation
import TensorCore

/// Scales every gradient of `parameters` so that their joint L2 norm is at most `maxNorm`; returns the
/// norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Variable], maxNorm: Float) -> Float {
    var total: Double = 0
    for p in parameters {
        guard let g = p.grad else { continue }
        g.withUnsafeBufferPointer { b in for x in b { total += Double(x) * Double(x) } }
    }
    let norm = Float(total.squareRoot())
    let factor = maxNorm / (norm + 1e-6)
    guard factor < 1 else { return norm }
    for p in parameters {
        if let g = p.grad { p.grad = Elementwise.scale(g, by: factor) }
    }
    return norm
}
