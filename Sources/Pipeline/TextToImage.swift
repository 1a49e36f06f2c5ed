// TextToImage: the one denoising loop with classifier-free guidance, for every sampler.
// Matches diffusers 0.42 `StableDiffusionPipeline.__call__`:
//
//     context = cat([encode(negative) × N, encode(prompt) × N])          [2N, 77, C]   (N images)
//     x = randn([N, C, h, w], generator) · init_noise_sigma               (NHWC here)
//     for t in timesteps:
//         ε_u, ε_c = unet(cat([x, x]) scaled, t, context).chunk(2)
//         x = sampler.step(ε_u + g·(ε_c − ε_u), t, x)                      (noise from the same generator)
//     image = vae.decode(x / scaling_factor (+ shift_factor))             (pixel models: x itself)
//
// Guidance scale g ≤ 1 skips the unconditional half, as diffusers does. The loop is the one of
// `Sampler.run`, written out so that progress can carry each step's sample.

import Autograd
import DiffusionModels
import Foundation
import PNGImage
import Schedulers
import TensorCore

extension PhiloxRandom: NoiseSource {
    /// N(0, 1) values in row-major order of `shape` (for latents: NHWC).
    public mutating func normal(_ shape: [Int]) -> Tensor { normal(shape: shape) }
}

/// Progress of a run, reported after every model evaluation.
public struct StepProgress: Sendable {
    /// Evaluations done and in total.
    public var step: Int
    public var total: Int
    /// Seconds since the denoising loop started.
    public var elapsed: Double
    /// The sample after this step, NHWC [N, h, w, C] (latents for latent models), e.g. for previews.
    public var latents: Tensor
}

/// One generated picture with the text its PNG carries.
public struct GeneratedImage: Sendable {
    public var image: Image
    public var info: ParametersText
}

public struct TextToImage {
    public let model: StableDiffusionModel

    public init(model: StableDiffusionModel) {
        self.model = model
    }

    /// `parameters` with the model-dependent fields filled in (size, Karras) and checked.
    public func resolve(_ parameters: GenerationParameters) throws -> GenerationParameters {
        var p = parameters
        p.width = p.width ?? model.defaultSize
        p.height = p.height ?? model.defaultSize
        p.karras = p.karras ?? (model.schedulerConfig.useKarrasSigmas == true && p.sampler.supportsKarras)
        let multiple = model.sizeMultiple
        for (name, value) in [("width", p.width!), ("height", p.height!)] {
            guard value > 0, value % multiple == 0 else {
                throw PipelineError.invalidRequest("\(name) \(value) must be a positive multiple of \(multiple)"
                    + (model.isLatent ? " for a latent model (its VAE downsamples by \(model.spatialFactor))" : ""))
            }
        }
        guard p.steps >= 1 else { throw PipelineError.invalidRequest("steps must be ≥ 1, got \(p.steps)") }
        guard p.numImages >= 1 else { throw PipelineError.invalidRequest("number of images must be ≥ 1, got \(p.numImages)") }
        guard p.guidanceScale.isFinite else { throw PipelineError.invalidRequest("CFG scale must be finite") }
        guard (0...model.textEncoder.config.numHiddenLayers - 1).contains(p.clipSkip) else {
            throw PipelineError.invalidRequest("clip skip \(p.clipSkip) must be in 0...\(model.textEncoder.config.numHiddenLayers - 1)")
        }
        if p.karras == true && !p.sampler.supportsKarras {
            throw PipelineError.invalidRequest("\(p.sampler.rawValue) has no Karras sigma spacing (samplers with it: "
                + SamplerKind.allCases.filter(\.supportsKarras).map(\.rawValue).joined(separator: ", ") + ")")
        }
        return p
    }

    /// Runs the request: `numImages` images, each with its `parameters` text.
    public func generate(_ parameters: GenerationParameters,
                         progress: ((StepProgress) -> Void)? = nil) throws -> [GeneratedImage] {
        let p = try resolve(parameters)
        let latents = try denoise(p, progress: progress)
        let hash = try model.modelHash()
        return try decode(latents).enumerated().map { i, image in
            GeneratedImage(image: image, info: ParametersText(parameters: p, batchPosition: i,
                                                              modelName: model.name, modelHash: hash))
        }
    }

    /// The final latents [N, h, w, C] (NHWC, before the VAE). `initialNoise` replaces the generator's
    /// first draw (N(0, 1), NHWC [N, h, w, C]); stochastic samplers still draw from the generator.
    public func denoise(_ parameters: GenerationParameters, initialNoise: Tensor? = nil,
                        progress: ((StepProgress) -> Void)? = nil) throws -> Tensor {
        let p = try resolve(parameters)
        switch p.rng {
        case .native:
            var noise = PhiloxRandom(seed: p.seed)
            return try denoise(p, noise: &noise, initialNoise: initialNoise, progress: progress)
        case .torch:
            var noise = TorchNoise(seed: p.seed)
            return try denoise(p, noise: &noise, initialNoise: initialNoise, progress: progress)
        }
    }

    /// The latent shape of a request: [N, H/f, W/f, UNet in_channels].
    public func latentShape(_ p: GenerationParameters) -> [Int] {
        let f = model.spatialFactor
        return [p.numImages, (p.height ?? model.defaultSize) / f, (p.width ?? model.defaultSize) / f,
                model.unet.config.inChannels]
    }

    private func denoise<N: NoiseSource>(_ p: GenerationParameters, noise: inout N, initialNoise: Tensor?,
                                         progress: ((StepProgress) -> Void)?) throws -> Tensor {
        let shape = latentShape(p)
        let guided = p.guidanceScale > 1
        let context = try encodePrompts(p, guided: guided)
        var sampler = try p.sampler.make(config: model.schedulerConfig, steps: p.steps, karras: p.karras, eta: p.eta)
        let start: Tensor
        if let initialNoise {
            guard initialNoise.shape == shape else {
                throw PipelineError.invalidRequest("initial noise \(initialNoise.shape) must have the latent shape \(shape)")
            }
            start = initialNoise
        } else {
            start = noise.normal(shape)
        }
        let clock = Date()
        let g = Float(p.guidanceScale)
        var x = scaled(start, by: sampler.initNoiseSigma)
        for i in sampler.timesteps.indices {
            let input = try sampler.scaleModelInput(x, step: i)
            var eps = try withNoGrad {
                try model.unet(Variable(guided ? Self.repeatBatch(input, 2) : input),
                               timesteps: [Float(sampler.timesteps[i])], context: context).value
            }
            if guided { eps = Self.guide(eps, scale: g) }
            x = try sampler.step(modelOutput: eps, step: i, sample: x, noise: &noise)
            progress?(StepProgress(step: i + 1, total: sampler.timesteps.count,
                                   elapsed: Date().timeIntervalSince(clock), latents: x))
        }
        return x
    }

    /// x · s (the initial noise times the sampler's `initNoiseSigma`).
    private func scaled(_ x: Tensor, by s: Float) -> Tensor {
        var out = x
        out.withUnsafeMutableBufferPointer { o in for i in o.indices { o[i] *= s } }
        return out
    }

    /// Text conditioning [2N, L, C] (`[negative × N, prompt × N]`) or [N, L, C] without guidance.
    public func encodePrompts(_ p: GenerationParameters, guided: Bool) throws -> Variable {
        let rows = (guided ? [p.negativePrompt, p.prompt] : [p.prompt]).map { PromptAdapters.extract(from: $0).prompt }
        let ids = rows.map { model.tokenizer.encode($0).ids }
        let encoded = try withNoGrad { try model.textEncoder.encode(ids, clipSkip: p.clipSkip) }.value  // [rows, L, C]
        let rowSize = encoded.count / rows.count
        let n = p.numImages
        return Variable(Tensor(shape: [rows.count * n] + Array(encoded.shape.dropFirst())) { out in
            encoded.withUnsafeBufferPointer { src in
                for r in 0..<rows.count {
                    for i in 0..<n {
                        (out.baseAddress! + (r * n + i) * rowSize).update(from: src.baseAddress! + r * rowSize, count: rowSize)
                    }
                }
            }
        })
    }

    /// Decodes final latents [N, h, w, C] to images: the VAE for latent models (one image at a time),
    /// the samples themselves for pixel models.
    public func decode(_ latents: Tensor) throws -> [Image] {
        let n = latents.shape[0]
        let perImage = latents.count / n
        return try (0..<n).map { i in
            let one = latents.withUnsafeBufferPointer { src in
                Tensor(shape: [1] + Array(latents.shape.dropFirst())) { out in
                    out.baseAddress!.update(from: src.baseAddress! + i * perImage, count: perImage)
                }
            }
            guard let vae = model.vae else { return try Image(tensorHWC: one) }
            let scale = vae.config.scalingFactor, shift = vae.config.shiftFactor ?? 0
            var z = one
            z.withUnsafeMutableBufferPointer { p in for k in p.indices { p[k] = p[k] / scale + shift } }
            let pixels = try withNoGrad { try vae.decode(Variable(z)) }.value
            return try Image(tensorHWC: pixels)
        }
    }

    /// [N, …] → [k·N, …]: the batch repeated k times (`cat([x] * k)`).
    static func repeatBatch(_ x: Tensor, _ k: Int) -> Tensor {
        var shape = x.shape
        shape[0] *= k
        return Tensor(shape: shape) { out in
            x.withUnsafeBufferPointer { src in
                for r in 0..<k { (out.baseAddress! + r * src.count).update(from: src.baseAddress!, count: src.count) }
            }
        }
    }

    /// [2N, …] = (ε_u, ε_c) → ε_u + g·(ε_c − ε_u), [N, …].
    static func guide(_ out: Tensor, scale g: Float) -> Tensor {
        var shape = out.shape
        shape[0] /= 2
        let half = out.count / 2
        return Tensor(shape: shape) { eps in
            out.withUnsafeBufferPointer { o in
                for i in 0..<half { eps[i] = o[i] + g * (o[half + i] - o[i]) }
            }
        }
    }
}
