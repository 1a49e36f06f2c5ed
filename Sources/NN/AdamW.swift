// AdamW: Adam (Kingma & Ba, 2015) with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:
//
//     p ← p − lr·λ·p
//     m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²
//     p ← p − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε)
//
// Parameters are named, so the moments can be saved next to the weights and restored by name
// (`state()` / `restore(_:)`). A parameter without a gradient at a step is left alone (its moments too),
// as torch skips parameters whose `.grad` is None.
import Autograd
import Foundation
import TensorCore

/// Errors of restoring optimiser state.
public enum OptimizerError: Error, CustomStringConvertible, Equatable {
    /// A saved moment is missing or has the wrong shape for the named parameter.
    case stateMismatch(key: String, reason: String)

    public var description: String {
        switch self {
        case .stateMismatch(let key, let reason): return "optimiser state for \(key): \(reason)"
        }
    }
}

public final class AdamW {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    /// Number of updates applied (t of the bias corrections).
    public private(set) var step = 0
    /// The optimised parameters with their names (state keys).
    public let parameters: [(String, Variable)]
    private var m: [Tensor], v: [Tensor]

    /// - Parameters:
    ///   - parameters: named parameters, e.g. `module.trainableParameters()`; names must be unique.
    ///   - weightDecay: λ, decoupled (0.01 as torch's default).
    public init(parameters: [(String, Variable)], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0.01) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        m = parameters.map { Tensor(zeros: $0.1.shape) }
        v = parameters.map { Tensor(zeros: $0.1.shape) }
    }

    /// Applies one update from the parameters' current gradients.
    public func update() {
        step += 1
        let c1 = 1 - powf(beta1, Float(step)), c2 = 1 - powf(beta2, Float(step))
        let (b1, b2, eps, lr) = (beta1, beta2, eps, learningRate)
        let decay = 1 - learningRate * weightDecay
        for i in parameters.indices {
            let p = parameters[i].1
            guard let grad = p.grad, grad.count == p.value.count else { continue }
            grad.withUnsafeBufferPointer { g in
                m[i].withUnsafeMutableBufferPointer { mm in
                    v[i].withUnsafeMutableBufferPointer { vv in
                        p.value.withUnsafeMutableBufferPointer { w in
                            for j in 0..<w.count {
                                let gj = g[j]
                                mm[j] = b1 * mm[j] + (1 - b1) * gj
                                vv[j] = b2 * vv[j] + (1 - b2) * gj * gj
                                w[j] = w[j] * decay - lr * (mm[j] / c1) / ((vv[j] / c2).squareRoot() + eps)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The moments as tensors keyed `exp_avg.<name>` / `exp_avg_sq.<name>`, and the step count.
    public func state() -> (tensors: [String: Tensor], step: Int) {
        var out: [String: Tensor] = [:]
        for (i, (name, _)) in parameters.enumerated() {
            out["exp_avg." + name] = m[i]
            out["exp_avg_sq." + name] = v[i]
        }
        return (out, step)
    }

    /// Restores what `state()` returned (extra keys are ignored; a missing or misshapen moment throws).
    public func restore(tensors: [String: Tensor], step: Int) throws {
        var newM = m, newV = v
        for (i, (name, p)) in parameters.enumerated() {
            for (prefix, slot) in [("exp_avg.", 0), ("exp_avg_sq.", 1)] {
                guard let t = tensors[prefix + name] else {
                    throw OptimizerError.stateMismatch(key: prefix + name, reason: "missing")
                }
                guard t.shape == p.shape else {
                    throw OptimizerError.stateMismatch(key: prefix + name, reason: "shape \(t.shape), parameter \(p.shape)")
                }
                if slot == 0 { newM[i] = t } else { newV[i] = t }
            }
        }
        m = newM
        v = newV
        self.step = step
    }
}
