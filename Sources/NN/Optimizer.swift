// The optimiser interface the training loop holds: one update at a given base learning rate, and the whole
// state as named tensors plus scalars, so that a checkpoint saves it and a resumed run continues bit for bit.
// AdamW, Prodigy (prodigyopt) and Adafactor (transformers) implement it.
import Autograd
import Foundation
import TensorCore

/// An optimiser's state: tensors under names the optimiser chooses (prefixed with its own name, e.g.
/// `prodigy.s.<parameter>`), scalars (kept as Float64, saved exactly) and the update count.
public struct OptimizerState {
    public var tensors: [String: Tensor]
    public var scalars: [String: Double]
    public var step: Int

    public init(tensors: [String: Tensor], scalars: [String: Double] = [:], step: Int) {
        self.tensors = tensors
        self.scalars = scalars
        self.step = step
    }
}

public protocol Optimizer: AnyObject {
    /// The optimised parameters, in groups with their learning-rate scales.
    var groups: [ParameterGroup] { get }
    /// Updates applied so far.
    var step: Int { get }
    /// Applies one update from the parameters' current gradients at base rate `learningRate` (scaled per group).
    func update(learningRate: Float)
    /// Everything a resumed run needs.
    func savedState() -> OptimizerState
    /// Restores what `savedState()` returned (extra entries are ignored); a missing or misshapen entry throws
    /// `OptimizerError.stateMismatch` and leaves the optimiser as it was.
    func restore(_ state: OptimizerState) throws
    /// The step size the last update took at base rate `learningRate`, as kohya logs it (Prodigy: d·lr; Adafactor
    /// with relative steps: its own rate; otherwise the rate itself).
    func effectiveLearningRate(_ learningRate: Float) -> Float
}

extension Optimizer {
    public func effectiveLearningRate(_ learningRate: Float) -> Float { learningRate }
}

/// Which optimiser, with its settings (AdamW is the default and keeps its settings apart).
public enum OptimizerChoice: Codable, Equatable, Sendable {
    case prodigy(ProdigySettings)
    case adafactor(AdafactorSettings)
}

extension AdamW: Optimizer {
    /// The moment names of training checkpoints: `adamw.m.<name>`, `adamw.v.<name>`.
    public static let checkpointKeys = MomentKeys(first: "adamw.m.", second: "adamw.v.")

    public func savedState() -> OptimizerState {
        let s = state(keys: Self.checkpointKeys)
        return OptimizerState(tensors: s.tensors, step: s.step)
    }

    public func restore(_ state: OptimizerState) throws {
        try restore(tensors: state.tensors, step: state.step, keys: Self.checkpointKeys)
    }
}

/// A saved tensor for `key`, checked against `shape`.
func savedTensor(_ tensors: [String: Tensor], _ key: String, shape: [Int]) throws -> Tensor {
    guard let t = tensors[key] else { throw OptimizerError.stateMismatch(key: key, reason: "missing") }
    guard t.shape == shape else { throw OptimizerError.stateMismatch(key: key, reason: "shape \(t.shape), expected \(shape)") }
    return t
}

/// A saved scalar for `key`.
func savedScalar(_ scalars: [String: Double], _ key: String) throws -> Double {
    guard let x = scalars[key] else { throw OptimizerError.stateMismatch(key: key, reason: "missing") }
    return x
}
