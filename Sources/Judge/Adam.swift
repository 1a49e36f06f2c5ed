// Adam (Kingma & Ba, 2015) with decoupled weight decay (AdamW, Loshchilov & Hutter), as torch.optim.AdamW:
//   m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²
//   p −= lr·(m/(1 − β1ᵗ) / (√(v/(1 − β2ᵗ)) + ε) + λ·p)
// A minimal optimiser for the judge; parameters without a gradient this step are left alone.
import Autograd
import Foundation
import TensorCore

public final class Adam {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    /// Number of steps taken.
    public private(set) var step = 0
    private let parameters: [Variable]
    private var m: [Tensor], v: [Tensor]

    public init(parameters: [Variable], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        m = parameters.map { Tensor(zeros: $0.shape) }
        v = parameters.map { Tensor(zeros: $0.shape) }
    }

    /// Applies one update from the parameters' current gradients.
    public func update() {
        step += 1
        let c1 = 1 - powf(beta1, Float(step)), c2 = 1 - powf(beta2, Float(step))
        let (b1, b2, eps, lr, wd) = (beta1, beta2, eps, learningRate, weightDecay)
        for (i, p) in parameters.enumerated() {
            guard let grad = p.grad, grad.count == p.value.count else { continue }
            grad.withUnsafeBufferPointer { g in
                m[i].withUnsafeMutableBufferPointer { mm in
                    v[i].withUnsafeMutableBufferPointer { vv in
                        p.value.withUnsafeMutableBufferPointer { w in
                            for j in 0..<w.count {
                                mm[j] = b1 * mm[j] + (1 - b1) * g[j]
                                vv[j] = b2 * vv[j] + (1 - b2) * g[j] * g[j]
                                w[j] -= lr * ((mm[j] / c1) / ((vv[j] / c2).squareRoot() + eps) + wd * w[j])
                            }
                        }
                    }
                }
            }
        }
    }
}
