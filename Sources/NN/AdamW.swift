// AdamW: Adam (Kingma & Ba, 2015) with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW
// (foreach=False, amsgrad=False); weight decay 0 gives Adam:
//
//     p ← p·(1 − lr·λ)
//     m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²
//     p ← p − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε)
//
// Parameters come in groups, each with its own learning-rate scale (e.g. UNet LoRA and text-encoder LoRA).
// Parameters are named, so the moments and the step count can be saved next to the weights and restored
// by name. One float evaluation order, torch's `_single_tensor_adamw`: p *= 1 − lr·λ first, then
// p −= (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε); a parameter without a gradient is left as it is (torch skips
// parameters whose .grad is None).
import Autograd
import Foundation
import TensorCore

/// Errors of restoring optimiser state.
public enum OptimizerError: Error, CustomStringConvertible, Equatable {
    /// A saved moment is missing or has the wrong shape for the named parameter.
    case stateMismatch(key: String, reason: String)
    /// An optimiser option out of its range (the message names it).
    case invalidSetting(String)

    public var description: String {
        switch self {
        case .stateMismatch(let key, let reason): return "optimiser state for \(key): \(reason)"
        case .invalidSetting(let message): return message
        }
    }
}

/// AdamW hyper-parameters (defaults: β 0.9/0.999, weight decay 1e-2, ε 1e-8, as torch and diffusers' scripts).
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

/// A group of named parameters sharing one learning rate.
public struct ParameterGroup {
    public var parameters: [(String, Variable)]
    /// Multiplies the optimiser's learning rate for this group.
    public var learningRateScale: Float

    public init(parameters: [(String, Variable)], learningRateScale: Float = 1) {
        self.parameters = parameters
        self.learningRateScale = learningRateScale
    }
}

/// How the moments are named in saved state: `first + name` (m) and `second + name` (v).
public struct MomentKeys: Sendable {
    public var first: String
    public var second: String

    public init(first: String, second: String) {
        self.first = first
        self.second = second
    }

    /// torch's state names: `exp_avg.<name>`, `exp_avg_sq.<name>`.
    public static let torch = MomentKeys(first: "exp_avg.", second: "exp_avg_sq.")
}

public final class AdamW {
    /// The base learning rate of the next `update()` (scaled per group).
    public var learningRate: Float
    public let settings: AdamWSettings
    public let groups: [ParameterGroup]
    /// Number of updates applied (t of the bias corrections).
    public private(set) var step = 0
    private var m: [[Tensor]], v: [[Tensor]]

    /// - Parameters:
    ///   - groups: named parameters (names unique over all groups), e.g. from `module.trainableParameters()`.
    ///   - learningRate: the base rate; `update(learningRate:)` sets it per step.
    public init(groups: [ParameterGroup], learningRate: Float = 0, settings: AdamWSettings = AdamWSettings()) {
        self.groups = groups
        self.learningRate = learningRate
        self.settings = settings
        m = groups.map { $0.parameters.map { Tensor(zeros: $0.1.shape) } }
        v = groups.map { $0.parameters.map { Tensor(zeros: $0.1.shape) } }
    }

    /// One group of `parameters` at scale 1.
    public convenience init(parameters: [(String, Variable)], learningRate: Float, beta1: Float = 0.9,
                            beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0.01) {
        self.init(groups: [ParameterGroup(parameters: parameters)], learningRate: learningRate,
                  settings: AdamWSettings(beta1: beta1, beta2: beta2, weightDecay: weightDecay, eps: eps))
    }

    /// All optimised parameters with their names, group by group.
    public var parameters: [(String, Variable)] { groups.flatMap(\.parameters) }

    /// Sets the base learning rate and applies one update.
    public func update(learningRate lr: Float) {
        learningRate = lr
        update()
    }

    /// Applies one update at `learningRate` from the parameters' current gradients. As torch's AdamW, a parameter
    /// without a gradient (one the loss does not reach, e.g. LoRA on a text-encoder layer after the one SDXL reads)
    /// is left as it is: no weight decay, no moment update.
    public func update() {
        step += 1
        let s = settings
        let (b1, b2, eps) = (s.beta1, s.beta2, s.eps)
        let c1 = 1 - powf(b1, Float(step)), c2 = 1 - powf(b2, Float(step)), c2Root = c2.squareRoot()
        for (gi, group) in groups.enumerated() {
            let lr = learningRate * group.learningRateScale
            let decay = 1 - lr * s.weightDecay, stepSize = lr / c1
            for (pi, (_, p)) in group.parameters.enumerated() {
                guard let grad = p.grad else { continue }
                grad.withUnsafeBufferPointer { g in
                    m[gi][pi].withUnsafeMutableBufferPointer { mm in
                        v[gi][pi].withUnsafeMutableBufferPointer { vv in
                            p.value.withUnsafeMutableBufferPointer { w in
                                for j in 0..<w.count {
                                    w[j] *= decay
                                    mm[j] = b1 * mm[j] + (1 - b1) * g[j]
                                    vv[j] = b2 * vv[j] + (1 - b2) * g[j] * g[j]
                                    w[j] -= stepSize * mm[j] / (vv[j].squareRoot() / c2Root + eps)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The moments as named tensors (`keys.first + name`, `keys.second + name`) and the step count.
    public func state(keys: MomentKeys = .torch) -> (tensors: [String: Tensor], step: Int) {
        var out: [String: Tensor] = [:]
        for (gi, group) in groups.enumerated() {
            for (pi, (name, _)) in group.parameters.enumerated() {
                out[keys.first + name] = m[gi][pi]
                out[keys.second + name] = v[gi][pi]
            }
        }
        return (out, step)
    }

    /// Restores what `state(keys:)` returned (extra keys are ignored; a missing or misshapen moment throws
    /// and leaves the optimiser as it was).
    public func restore(tensors: [String: Tensor], step: Int, keys: MomentKeys = .torch) throws {
        var newM = m, newV = v
        for (gi, group) in groups.enumerated() {
            for (pi, (name, p)) in group.parameters.enumerated() {
                for (key, first) in [(keys.first + name, true), (keys.second + name, false)] {
                    guard let t = tensors[key] else { throw OptimizerError.stateMismatch(key: key, reason: "missing") }
                    guard t.shape == p.shape else {
                        throw OptimizerError.stateMismatch(key: key, reason: "shape \(t.shape), parameter \(p.shape)")
                    }
                    if first { newM[gi][pi] = t } else { newV[gi][pi] = t }
                }
            }
        }
        m = newM
        v = newV
        self.step = step
    }
}
