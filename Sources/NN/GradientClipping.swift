// Gradient-norm clipping: scales all gradients together so that their joint L2 norm is at most a bound,
// as torch.nn.utils.clip_grad_norm_ (factor maxNorm / (norm + 1e-6)). Parameters without a gradient are
// skipped. Two variants exist (`GradientClipRule`) because runs were made with each and must continue bit
// for bit.
import Autograd
import Foundation
import TensorCore

/// How the norm is summed and when the factor applies.
public enum GradientClipRule: Sendable {
    /// torch's: Σ Double(g)² in Double; scaled whenever maxNorm / (norm + 1e-6) < 1.
    case torch
    /// Σ Double(g·g) (squares rounded to Float); scaled only when maxNorm > 0 and norm > maxNorm.
    case aboveMaxNorm
}

/// Scales every gradient of `parameters` so that their joint L2 norm is at most `maxNorm`; returns the
/// norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Variable], maxNorm: Float, rule: GradientClipRule = .torch) -> Float {
    var total: Double = 0
    for p in parameters {
        guard let g = p.grad else { continue }
        switch rule {
        case .torch: g.withUnsafeBufferPointer { b in for x in b { total += Double(x) * Double(x) } }
        case .aboveMaxNorm: g.withUnsafeBufferPointer { b in for x in b { total += Double(x * x) } }
        }
    }
    let norm = Float(total.squareRoot())
    let factor = maxNorm / (norm + 1e-6)
    let clips: Bool
    switch rule {
    case .torch: clips = factor < 1
    case .aboveMaxNorm: clips = maxNorm > 0 && norm > maxNorm
    }
    guard clips else { return norm }
    for p in parameters {
        if let g = p.grad { p.grad = Elementwise.scale(g, by: factor) }
    }
    return norm
}
