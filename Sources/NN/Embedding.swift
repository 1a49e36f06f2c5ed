// Embedding: a lookup table of learned vectors (torch.nn.Embedding; weight [num_embeddings, dim]).
import Autograd
import TensorCore

public final class Embedding: Module {
    public let weight: Variable          // [count, dim]

    public init(count: Int, dim: Int) {
        weight = Variable(Tensor(zeros: [count, dim]), requiresGrad: true)
        super.init()
    }

    /// PyTorch's default: weight ~ N(0, 1).
    public override func resetParameters(random: inout PhiloxRandom) {
        weight.value = random.normal(shape: weight.shape)
    }

    /// ids laid out as `shape` (default [ids.count]) → shape + [dim]. Throws for an id outside the table.
    public func callAsFunction(_ ids: [Int], shape: [Int]? = nil) throws -> Variable {
        try embedding(ids, shape: shape, table: weight)
    }
}
