// Several requests in one denoising loop: each with its own prompt, negative prompt, seed, number of images
// and adapter weights, sharing size, steps, sampler, guidance and generator kind. The UNet runs once per
// step over the whole batch; each image's adapters act on its own rows only (LoRA's per-image batching),
// and each request's noise comes from its own generator, so every image equals its request run alone.

import PNGImage
import Schedulers
import TensorCore

/// An adapter's weights for some images: w of w·α/r in the UNet and in the text encoder.
public struct AdapterWeights: Equatable, Sendable {
    public var unet: Float
    public var textEncoder: Float

    public init(unet: Float, textEncoder: Float) {
        self.unet = unet
        self.textEncoder = textEncoder
    }
}

/// One request of a batch run by `TextToImage.generate(batch:)`.
public struct BatchRequest: Equatable, Sendable {
    /// The request; in a batch, every request shares `sharesDenoisingLoop` settings.
    public var parameters: GenerationParameters
    /// Adapter name (as loaded into the pipeline's `AdapterSet`) → this request's weights; adapters not
    /// named are off for its images. nil: the adapters as they are set, for every request of the batch.
    public var adapterWeights: [String: AdapterWeights]?
    /// Image-to-image: the picture this request starts from (any size; resized to the request's), present
    /// exactly when `parameters.initImage` is.
    public var initImage: Image?

    public init(parameters: GenerationParameters, adapterWeights: [String: AdapterWeights]? = nil, initImage: Image? = nil) {
        self.parameters = parameters
        self.adapterWeights = adapterWeights
        self.initImage = initImage
    }
}

extension GenerationParameters {
    /// Whether two requests can share one denoising loop: same size, steps, sampler (with Karras and η),
    /// guidance scale, generator kind and img2img strength. Prompts, seeds, clip skip, image counts, init
    /// images and adapters may differ.
    public func sharesDenoisingLoop(with other: GenerationParameters) -> Bool {
        width == other.width && height == other.height && steps == other.steps && sampler == other.sampler
            && karras == other.karras && eta == other.eta && guidanceScale == other.guidanceScale
            && guidanceRescale == other.guidanceRescale && rng == other.rng
            && initImage?.strength == other.initImage?.strength
    }
}

/// Noise for a batch made of consecutive row blocks, each drawn from its own source: asked for
/// [Σ rows, …], it draws [rows_b, …] from source b in order and stacks them. Image i of a batch thus gets
/// exactly the noise its request gets alone; a single block is its source unchanged.
public struct RowBlockNoise<Source: NoiseSource>: NoiseSource {
    public var sources: [Source]
    /// Batch rows of each source's block.
    public let rows: [Int]

    public init(sources: [Source], rows: [Int]) {
        precondition(sources.count == rows.count && !rows.isEmpty, "RowBlockNoise: one row count per source")
        self.sources = sources
        self.rows = rows
    }

    public mutating func normal(_ shape: [Int]) -> Tensor {
        if sources.count == 1 { return sources[0].normal(shape) }
        precondition(shape.first == rows.reduce(0, +), "RowBlockNoise: asked for \(shape), blocks of \(rows) rows")
        let blocks = sources.indices.map { b in sources[b].normal([rows[b]] + shape.dropFirst()) }
        return Tensor(shape: shape) { out in
            var offset = 0
            for block in blocks {
                block.withUnsafeBufferPointer { src in (out.baseAddress! + offset).update(from: src.baseAddress!, count: src.count) }
                offset += block.count
            }
        }
    }
}
