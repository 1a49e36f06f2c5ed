// Dropout with an explicit random source: in training mode each element is kept with probability
// 1 − p and scaled by 1/(1 − p); in evaluation mode (or with p = 0) it is the identity and costs nothing.
import Autograd
import TensorCore

public final class Dropout: Module {
    public let p: Float

    public init(p: Float = 0) {
        self.p = p
        super.init()
    }

    /// x → x · mask / (1 − p) in training, x in evaluation. Draws one uniform number per element from `random`.
    public func callAsFunction(_ x: Variable, random: inout PhiloxRandom) throws -> Variable {
        guard isTraining, p > 0 else { return x }
        guard p < 1 else { return try mul(x, Variable(Tensor(zeros: [1]))) }
        var mask = random.uniform(shape: x.shape)
        let keep = 1 / (1 - p), drop = p
        mask.withUnsafeMutableBufferPointer { m in
            for i in m.indices { m[i] = m[i] < drop ? 0 : keep }
        }
        return try mul(x, Variable(mask))
    }
}
