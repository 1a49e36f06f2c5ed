// AdamW (Loshchilov & Hutter), step for step as torch.optim.AdamW (foreach=False, amsgrad=False):
//   p ← p·(1 − lr·λ)
//   m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
// Its state (t, m, v per parameter) is named by the parameters' key paths so checkpoints can carry it.
import Autograd
import Foundation
import TensorCore

/// AdamW hyper-parameters (defaults: β 0.9/0.999, weight decay 1e-2, ε 1e-8, as diffusers' scripts).
public struct AdamWSettings: Codable, Equatable, Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var weightDecay: Float = 1e-2
    public var eps: Float = 1e-8

    public init(beta1: Float = 0.9, beta2: Float = 0.999, weightDecay: Float = 1e-2, eps: Float = 1e-8) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.weightDecay = weightDecay
        self.eps = eps
    }
}

/// A group of parameters sharing one learning rate (e.g. UNet LoRA and text-encoder LoRA).
public struct ParameterGroup {
    public var parameters: [(String, Variable)]
    /// Multiplies the schedule's learning rate for this group.
    public var learningRateScale: Float

    public init(parameters: [(String, Variable)], learningRateScale: Float = 1) {
        self.parameters = parameters
        self.learningRateScale = learningRateScale
    }
}

public final class AdamW {
    public let settings: AdamWSettings
    public let groups: [ParameterGroup]
    /// Number of updates taken (t).
    public private(set) var step = 0
    private var m: [[Tensor]]
    private var v: [[Tensor]]

    public init(groups: [ParameterGroup], settings: AdamWSettings = AdamWSettings()) {
        self.groups = groups
        self.settings = settings
        m = groups.map { $0.parameters.map { Tensor(zeros: $0.1.shape) } }
        v = groups.map { $0.parameters.map { Tensor(zeros: $0.1.shape) } }
    }

    /// One update at base learning rate `lr` from the parameters' gradients (a parameter with no
    /// gradient counts as a zero gradient, as torch does for a parameter whose `.grad` was zeroed).
    public func update(learningRate lr: Float) {
        step += 1
        let s = settings
        let c1 = 1 - powf(s.beta1, Float(step)), c2Root = (1 - powf(s.beta2, Float(step))).squareRoot()
        for (gi, group) in groups.enumerated() {
            let rate = lr * group.learningRateScale
            let stepSize = rate / c1, decay = 1 - rate * s.weightDecay
            for (pi, (_, p)) in group.parameters.enumerated() {
                let grad = p.grad ?? Tensor(zeros: p.shape)
                grad.withUnsafeBufferPointer { g in
                    m[gi][pi].withUnsafeMutableBufferPointer { mm in
                        v[gi][pi].withUnsafeMutableBufferPointer { vv in
                            p.value.withUnsafeMutableBufferPointer { w in
                                for j in 0..<w.count {
                                    w[j] *= decay
                                    mm[j] = s.beta1 * mm[j] + (1 - s.beta1) * g[j]
                                    vv[j] = s.beta2 * vv[j] + (1 - s.beta2) * g[j] * g[j]
                                    w[j] -= stepSize * mm[j] / (vv[j].squareRoot() / c2Root + s.eps)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The optimiser state as named tensors (`adamw.m.<key>`, `adamw.v.<key>`) plus the step count.
    public func stateTensors() -> (tensors: [String: Tensor], step: Int) {
        var out: [String: Tensor] = [:]
        for (gi, group) in groups.enumerated() {
            for (pi, (key, _)) in group.parameters.enumerated() {
                out["adamw.m." + key] = m[gi][pi]
                out["adamw.v." + key] = v[gi][pi]
            }
        }
        return (out, step)
    }

    /// Restores the state written by `stateTensors`; every moment must be present with the right shape.
    public func restore(tensors: [String: Tensor], step: Int) throws {
        var newM = m, newV = v
        for (gi, group) in groups.enumerated() {
            for (pi, (key, p)) in group.parameters.enumerated() {
                guard let a = tensors["adamw.m." + key], let b = tensors["adamw.v." + key] else {
                    throw TrainingError.invalidCheckpoint("optimiser state for \(key) is missing")
                }
                guard a.shape == p.shape, b.shape == p.shape else {
                    throw TrainingError.invalidCheckpoint("optimiser state for \(key) has shape \(a.shape), expected \(p.shape)")
                }
                newM[gi][pi] = a
                newV[gi][pi] = b
            }
        }
        m = newM
        v = newV
        self.step = step
    }
}

/// Scales every gradient so that their joint L2 norm is at most `maxNorm` (torch's `clip_grad_norm_`:
/// factor maxNorm / (norm + 1e-6), applied only when it is below 1). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Variable], maxNorm: Float) -> Float {
    var total: Double = 0
    for p in parameters {
        guard let g = p.grad else { continue }
        g.withUnsafeBufferPointer { b in for x in b { total += Double(x) * Double(x) } }
    }
    let norm = Float(total.squareRoot())
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 {
        for p in parameters {
            if let g = p.grad { p.grad = Elementwise.scale(g, by: factor) }
        }
    }
    return norm
}
