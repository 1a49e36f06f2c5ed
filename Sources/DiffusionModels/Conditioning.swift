// Conditioning: everything the UNet is conditioned on besides the timestep, as one value: the text
// encoder's hidden states (the cross-attention keys and values) and, for SDXL (`addition_embed_type:
// "text_time"`), the pooled text embeds and the six size/crop time ids. `Pipeline.StableDiffusionModel
// .encode(prompts:clipSkip:)` makes it and `unet(x, timesteps:, conditioning:)` consumes it, so a new
// conditioning input touches those two places.
import Autograd
import TensorCore

public struct Conditioning {
    /// Encoder hidden states [N, S, crossAttentionDim] (text-encoder output after clip skip).
    public var context: Variable
    /// SDXL: the second text encoder's projected pooled output [N, P] (`added_cond_kwargs["text_embeds"]`).
    public var textEmbeds: Variable?
    /// SDXL: [N, 6] = original size (h, w), crop top-left (y, x), target size (h, w) (`added_cond_kwargs["time_ids"]`).
    public var timeIds: Tensor?

    public init(context: Variable, textEmbeds: Variable? = nil, timeIds: Tensor? = nil) {
        self.context = context
        self.textEmbeds = textEmbeds
        self.timeIds = timeIds
    }

    /// Batch rows.
    public var count: Int { context.shape[0] }

    /// The same row operation applied to every field (each field's rows are its first dimension), e.g. to
    /// repeat or concatenate the rows of a batch. Gradients do not flow through the result.
    public func mapRows(_ transform: (Tensor) throws -> Tensor) rethrows -> Conditioning {
        Conditioning(context: Variable(try transform(context.value)),
                     textEmbeds: try textEmbeds.map { Variable(try transform($0.value)) },
                     timeIds: try timeIds.map(transform))
    }

    /// Rows of several conditionings of the same kind, each field concatenated in order.
    public static func concatRows(_ parts: [Conditioning]) -> Conditioning {
        func cat(_ tensors: [Tensor]) -> Tensor {
            let rows = tensors.reduce(0) { $0 + $1.shape[0] }
            return Tensor(shape: [rows] + Array(tensors[0].shape.dropFirst())) { out in
                var offset = 0
                for t in tensors {
                    t.withUnsafeBufferPointer { (out.baseAddress! + offset).update(from: $0.baseAddress!, count: $0.count) }
                    offset += t.count
                }
            }
        }
        let embeds = parts.compactMap(\.textEmbeds)
        let ids = parts.compactMap(\.timeIds)
        return Conditioning(context: Variable(cat(parts.map(\.context.value))),
                            textEmbeds: embeds.count == parts.count ? Variable(cat(embeds.map(\.value))) : nil,
                            timeIds: ids.count == parts.count ? cat(ids) : nil)
    }
}
