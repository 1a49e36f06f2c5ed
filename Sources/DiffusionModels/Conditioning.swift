// Conditioning: everything the UNet is conditioned on besides the timestep, as one value. Today that is the
// text encoder's hidden states (the cross-attention keys and values); SDXL's pooled text embeddings and
// time ids are fields to add here. `Pipeline.StableDiffusionModel.encode(prompts:clipSkip:)` makes it and
// `unet(x, timesteps:, conditioning:)` consumes it, so a new conditioning input touches those two places.
import Autograd
import TensorCore

public struct Conditioning {
    /// Encoder hidden states [N, S, crossAttentionDim] (text-encoder output after clip skip).
    public var context: Variable

    public init(context: Variable) {
        self.context = context
    }

    /// Batch rows.
    public var count: Int { context.shape[0] }
}
