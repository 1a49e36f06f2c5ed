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
// Image-to-image (`parameters.initImage`, the picture with the request) follows diffusers 0.42
// `StableDiffusionImg2ImgPipeline.__call__` on the same loop:
//
//     image = resize(picture, width, height) (Pillow Lanczos, as VaeImageProcessor) in [−1, 1]
//     x₀ = scaling_factor · (vae.encode(image).mean + σ · randn(generator))    (pixel models: image itself)
//        = scaling_factor · taesd.encode(image).latents                       (with the tiny autoencoder: no draw)
//     first = (steps − min(int(steps · strength), steps)) · scheduler.order
//     x = scheduler.add_noise(x₀, randn(generator), timesteps[first]); run the loop from `first`
//
// Guidance scale g ≤ 1 skips the unconditional half, as diffusers does. The loop is `Sampler.run`, the
// project's one denoising loop; this file supplies the model closure (UNet + guidance) and the noise.
//
// A batch of requests (`BatchRequest`: own prompts, seeds and adapter weights) runs the same loop once:
// each request's prompts are encoded alone under its text-encoder adapter weights, its noise comes from
// its own generator (`RowBlockNoise`), and the UNet's adapters get per-row weights passed with the call
// (`AdapterRowWeights`, bound around each UNet evaluation) in the batch's row order `[uncond of every image,
// cond of every image]`; the model's layers are never changed, so pipelines may share a model. A single
// request is the batch of one.

import Adapters
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
    /// Evaluations done and in total (image to image: of those after its start).
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
    /// The adapters loaded into `model`; batches whose requests carry adapter weights pass them per image
    /// with each model call (the adapters' own weights are not changed).
    public let adapters: AdapterSet?
    /// When the VAE decodes in tiles (`--vae-tiling`): by default only pictures above 1024² pixels.
    public var vaeTiling: VAETiling = .automatic
    /// A tiny autoencoder (TAESD, `--taesd DIR`) that decodes the final latents, and encodes img2img init images,
    /// instead of the model's VAE.
    public var tinyAutoencoder: AutoencoderTiny?

    public init(model: StableDiffusionModel, adapters: AdapterSet? = nil) {
        self.model = model
        self.adapters = adapters
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
        guard (0...1).contains(p.guidanceRescale) else {
            throw PipelineError.invalidRequest("guidance rescale must be in [0, 1], got \(p.guidanceRescale)")
        }
        guard (0...model.maxClipSkip).contains(p.clipSkip) else {
            throw PipelineError.invalidRequest("clip skip \(p.clipSkip) must be in 0...\(model.maxClipSkip)")
        }
        for (name, pair) in [("original size", p.sizeConditioning?.originalSize), ("crop coords", p.sizeConditioning?.cropTopLeft),
                             ("target size", p.sizeConditioning?.targetSize)] {
            if let pair, pair.count != 2 || pair.contains(where: { $0 < 0 }) {
                throw PipelineError.invalidRequest("\(name) must be two non-negative numbers, got \(pair)")
            }
        }
        if let initImage = p.initImage {
            do {
                _ = try p.sampler.make(config: model.schedulerConfig, steps: p.steps, karras: p.karras, eta: p.eta)
                    .startStep(strength: initImage.strength, steps: p.steps)
            } catch SchedulerError.invalidConfig(let message), SchedulerError.invalidStep(let message) {
                throw PipelineError.invalidRequest(message)
            }
        }
        if p.karras == true && !p.sampler.supportsKarras {
            throw PipelineError.invalidRequest("\(p.sampler.rawValue) has no Karras sigma spacing (samplers with it: "
                + SamplerKind.allCases.filter(\.supportsKarras).map(\.rawValue).joined(separator: ", ") + ")")
        }
        return p
    }

    /// `parameters` of an img2img request resolved: without a size, the init image's own, rounded down to
    /// the size multiple (as diffusers' `VaeImageProcessor` does).
    public func resolve(_ parameters: GenerationParameters, initImage: Image?) throws -> GenerationParameters {
        var p = parameters
        if let picture = initImage {
            let m = model.sizeMultiple
            p.width = p.width ?? max(picture.width / m * m, m)
            p.height = p.height ?? max(picture.height / m * m, m)
        }
        return try resolve(p)
    }

    /// The requests of a batch resolved, checked to share one denoising loop, and their adapters checked.
    public func resolve(batch: [BatchRequest]) throws -> [BatchRequest] {
        guard !batch.isEmpty else { throw PipelineError.invalidRequest("a batch needs at least one request") }
        var out = batch
        for i in out.indices { out[i].parameters = try resolve(out[i].parameters, initImage: out[i].initImage) }
        for r in out.dropFirst() where !r.parameters.sharesDenoisingLoop(with: out[0].parameters) {
            throw PipelineError.invalidRequest("the requests of one batch must share size, steps, sampler, Karras, eta, "
                + "CFG scale, RNG and strength; run \"\(r.parameters.prompt)\" apart")
        }
        for r in out where (r.parameters.initImage == nil) != (r.initImage == nil) {
            throw PipelineError.invalidRequest(r.initImage == nil
                ? "\"\(r.parameters.prompt)\" has img2img parameters but no init image"
                : "\"\(r.parameters.prompt)\" has an init image but no img2img parameters (strength)")
        }
        let weighted = out.filter { $0.adapterWeights != nil }.count
        guard weighted == 0 || weighted == out.count else {
            throw PipelineError.invalidRequest("either every request of a batch carries adapter weights or none does")
        }
        let loaded = adapters?.names ?? []
        for name in Set(out.flatMap { $0.adapterWeights?.keys.map { $0 } ?? [] }).sorted() where !loaded.contains(name) {
            throw PipelineError.invalidRequest("adapter \(name) is not loaded into the pipeline (loaded: "
                + (loaded.isEmpty ? "none" : loaded.joined(separator: ", ")) + ")")
        }
        return out
    }

    /// Runs the request: `numImages` images, each with its `parameters` text. With `initImage` (and
    /// `parameters.initImage` set), image-to-image from that picture.
    public func generate(_ parameters: GenerationParameters, initImage: Image? = nil,
                         progress: ((StepProgress) -> Void)? = nil) throws -> [GeneratedImage] {
        try generate(batch: [BatchRequest(parameters: parameters, initImage: initImage)], progress: progress)[0]
    }

    /// Runs the requests in one denoising loop; returns each request's images with their `parameters`
    /// texts. Every image equals its request run alone.
    public func generate(batch: [BatchRequest],
                         progress: ((StepProgress) -> Void)? = nil) throws -> [[GeneratedImage]] {
        let requests = try resolve(batch: batch)
        let images = try decode(try denoiseResolved(requests, initialNoise: nil, progress: progress))
        let hash = try model.modelHash()
        let precision = BFloat16Compute.isAvailable && model.unet.computesInBFloat16 ? "bf16" : nil
        var first = 0
        return requests.map { r in
            let p = r.parameters
            defer { first += p.numImages }
            return (0..<p.numImages).map { i in
                GeneratedImage(image: images[first + i], info: ParametersText(parameters: p, batchPosition: i,
                                                                              modelName: model.name, modelHash: hash,
                                                                              precision: precision))
            }
        }
    }

    /// The final latents [N, h, w, C] (NHWC, before the VAE). `initialNoise` replaces the generator's
    /// first draw (N(0, 1), NHWC [N, h, w, C]); stochastic samplers still draw from the generator.
    /// With an init image, `initialNoise` replaces the noise that `add_noise` mixes in.
    public func denoise(_ parameters: GenerationParameters, initImage: Image? = nil, initialNoise: Tensor? = nil,
                        progress: ((StepProgress) -> Void)? = nil) throws -> Tensor {
        try denoise(batch: [BatchRequest(parameters: parameters, initImage: initImage)], initialNoise: initialNoise,
                    progress: progress)
    }

    /// The final latents of a batch [Σ numImages, h, w, C], the requests' images in order.
    public func denoise(batch: [BatchRequest], initialNoise: Tensor? = nil,
                        progress: ((StepProgress) -> Void)? = nil) throws -> Tensor {
        try denoiseResolved(try resolve(batch: batch), initialNoise: initialNoise, progress: progress)
    }

    /// The latent shape of a request: [N, H/f, W/f, UNet in_channels].
    public func latentShape(_ p: GenerationParameters) -> [Int] {
        let f = model.spatialFactor
        return [p.numImages, (p.height ?? model.defaultSize) / f, (p.width ?? model.defaultSize) / f,
                model.unet.config.inChannels]
    }

    /// Each request's generator of `rng` kind, seeded with its seed, for its block of rows.
    private func denoiseResolved(_ batch: [BatchRequest], initialNoise: Tensor?,
                                 progress: ((StepProgress) -> Void)?) throws -> Tensor {
        let rows = batch.map(\.parameters.numImages), seeds = batch.map(\.parameters.seed)
        switch batch[0].parameters.rng {
        case .native:
            var noise = RowBlockNoise(sources: seeds.map { PhiloxRandom(seed: $0) }, rows: rows)
            return try denoise(batch, noise: &noise, initialNoise: initialNoise, progress: progress)
        case .torch:
            var noise = RowBlockNoise(sources: seeds.map { TorchNoise(seed: $0) }, rows: rows)
            return try denoise(batch, noise: &noise, initialNoise: initialNoise, progress: progress)
        }
    }

    private func denoise<S: NoiseSource>(_ batch: [BatchRequest], noise: inout RowBlockNoise<S>, initialNoise: Tensor?,
                                         progress: ((StepProgress) -> Void)?) throws -> Tensor {
        let p = batch[0].parameters
        var shape = latentShape(p)
        shape[0] = batch.reduce(0) { $0 + $1.parameters.numImages }
        let guided = p.guidanceScale > 1
        let conditioning = try self.conditioning(batch: batch, guided: guided)
        let unetWeights = rowWeights(batch.flatMap { r in
            Array(repeating: r.adapterWeights?.mapValues(\.unet), count: r.parameters.numImages)
        }, copies: guided ? 2 : 1)
        var sampler = try p.sampler.make(config: model.schedulerConfig, steps: p.steps, karras: p.karras, eta: p.eta)
        let start: Tensor
        // img2img: the init images' x₀ is drawn before the noise, as diffusers' prepare_latents does
        let clean = p.initImage == nil ? nil : try initLatents(batch, shape: shape, noise: &noise)
        if let initialNoise {
            guard initialNoise.shape == shape else {
                throw PipelineError.invalidRequest("initial noise \(initialNoise.shape) must have the latent shape \(shape)")
            }
            start = initialNoise
        } else {
            start = noise.normal(shape)
        }
        var from = DenoisingStart.noise(start), first = 0
        if let clean, let strength = p.initImage?.strength {
            first = try sampler.startStep(strength: strength, steps: p.steps)
            from = .latents(try sampler.addNoise(to: clean, noise: start, step: first), step: first)
        }
        let clock = Date()
        let g = Float(p.guidanceScale), phi = Float(p.guidanceRescale)
        return try sampler.run(from: from, noise: &noise, progress: { s in
            progress?(StepProgress(step: s.step - first, total: s.total - first, elapsed: Date().timeIntervalSince(clock), latents: s.sample))
        }) { input, t in
            let eps = try withNoGrad {
                try AdapterRowWeights.$current.withValue(unetWeights) {
                    try model.unet(Variable(guided ? Self.repeatBatch(input, 2) : input), timesteps: [Float(t)],
                                   conditioning: conditioning).value
                }
            }
            return guided ? try Self.guide(eps, scale: g, rescale: phi) : eps
        }
    }

    /// The clean start x₀ of an img2img batch, [Σ numImages, h, w, C]: each request's init image resized to
    /// the request's size, VAE-encoded and sampled with noise from the request's own generator (latent
    /// models; pixel models take the image), repeated for its `numImages` images.
    private func initLatents<S: NoiseSource>(_ batch: [BatchRequest], shape: [Int],
                                             noise: inout RowBlockNoise<S>) throws -> Tensor {
        let one = [1] + Array(shape.dropFirst())
        let parts = try batch.indices.map { b -> Tensor in
            let r = batch[b]
            guard let picture = r.initImage, let w = r.parameters.width, let h = r.parameters.height else {
                throw PipelineError.invalidRequest("\"\(r.parameters.prompt)\" has no init image")
            }
            let sized = try picture.fitted(width: w, height: h, mode: r.parameters.initImage?.resize ?? .stretch)
            let pixels = try sized.tensorHWC().reshaped([1, h, w, 3])
            var x0 = pixels
            if let tiny = tinyAutoencoder, model.vae != nil {
                guard tiny.downsamplingFactor == model.spatialFactor else {
                    throw PipelineError.invalidRequest("the tiny autoencoder downsamples by \(tiny.downsamplingFactor), "
                        + "the model's VAE by \(model.spatialFactor)")
                }
                x0 = try tiny.unetLatents(fromImage: pixels)
            } else if let vae = model.vae {
                x0 = try vae.unetLatents(fromImage: pixels, noise: noise.sources[b].normal(one))
            } else if pixels.shape != one {
                throw PipelineError.invalidRequest("a pixel model with \(one[3]) channels cannot start from an RGB image")
            }
            return Self.repeatBatch(x0, r.parameters.numImages)
        }
        if parts.count == 1 { return parts[0] }
        return Tensor(shape: shape) { out in
            var offset = 0
            for part in parts {
                part.withUnsafeBufferPointer { (out.baseAddress! + offset).update(from: $0.baseAddress!, count: $0.count) }
                offset += part.count
            }
        }
    }

    /// The per-row adapter weights of a batch whose images carry `perImage` weights (nil: the request carries
    /// none), `copies` groups of the images; nil when no image carries weights or no adapters are loaded.
    private func rowWeights(_ perImage: [[String: Float]?], copies: Int) -> AdapterRowWeights? {
        guard let adapters, perImage.contains(where: { $0 != nil }) else { return nil }
        return adapters.rowWeights(perImage.map { $0 ?? [:] }, copies: copies)
    }

    /// Conditioning of a batch, rows `[uncond of every image, cond of every image]` ([2N, L, C]; [N, L, C]
    /// without guidance): each request encoded alone, under its own text-encoder adapter weights.
    func conditioning(batch: [BatchRequest], guided: Bool) throws -> Conditioning {
        let parts = try batch.map { r -> Conditioning in
            try AdapterRowWeights.$current.withValue(rowWeights([r.adapterWeights?.mapValues(\.textEncoder)],
                                                                copies: guided ? 2 : 1)) {
                try conditioning(r.parameters, guided: guided)                  // [k·n, …]
            }
        }
        if parts.count == 1 { return parts[0] }
        let halves = guided ? 2 : 1
        // [uncond₁, cond₁], [uncond₂, cond₂], … → [uncond₁, uncond₂, …, cond₁, cond₂, …]
        return Conditioning.concatRows((0..<halves).flatMap { half in
            parts.map { part in part.mapRows { Self.rows($0, half * part.count / halves, part.count / halves) } }
        })
    }

    /// Conditioning [2N, L, C] (`[negative × N, prompt × N]`) or [N, L, C] without guidance; `<lora:…>`
    /// tags are taken out of the prompts first. SDXL (`StableDiffusionXLPipeline`): an empty negative prompt
    /// is zeros when the model says `force_zeros_for_empty_prompt` (diffusers' `negative_prompt=None`), and
    /// every row gets the request's `add_time_ids` (the negative rows the same ones: `negative_original_size`
    /// and its siblings are not offered).
    public func conditioning(_ p: GenerationParameters, guided: Bool) throws -> Conditioning {
        let rows = try (guided ? [p.negativePrompt, p.prompt] : [p.prompt]).map { try AdapterRequest.extractTags(from: $0).prompt }
        var encoded = try withNoGrad { try model.encode(prompts: rows, clipSkip: p.clipSkip) }   // [rows, …]
        if model.isSDXL {
            let zeroNegative = guided && model.forceZerosForEmptyPrompt
                && rows[0].trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            if zeroNegative { encoded = encoded.mapRows { Self.zeroingFirstRow($0) } }
            let ids = (p.sizeConditioning ?? SizeConditioning()).timeIds(width: p.width ?? model.defaultSize,
                                                                         height: p.height ?? model.defaultSize)
            encoded.timeIds = try Tensor(shape: [rows.count, ids.count], scalars: Array((0..<rows.count).map { _ in ids }.joined()))
        }
        let n = p.numImages
        return encoded.mapRows { t in
            Self.concat((0..<rows.count).flatMap { r in Array(repeating: Self.rows(t, r, 1), count: n) })
        }
    }

    /// Rows `first..<first + count` of x [R, …].
    static func rows(_ x: Tensor, _ first: Int, _ count: Int) -> Tensor {
        let rowSize = x.count / x.shape[0]
        return Tensor(shape: [count] + Array(x.shape.dropFirst())) { out in
            x.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress! + first * rowSize, count: count * rowSize) }
        }
    }

    /// Tensors of equal trailing shape concatenated along the first axis.
    static func concat(_ parts: [Tensor]) -> Tensor {
        Conditioning.concatRows(parts.map { Conditioning(context: Variable($0)) }).context.value
    }

    /// x [R, …] with row 0 set to zeros.
    static func zeroingFirstRow(_ x: Tensor) -> Tensor {
        let rowSize = x.count / x.shape[0]
        return Tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
            out.baseAddress!.update(repeating: 0, count: rowSize)
        }
    }

    /// Decodes final latents [N, h, w, C] to images: the VAE for latent models (one image at a time),
    /// the samples themselves for pixel models.
    public func decode(_ latents: Tensor) throws -> [Image] {
        // The denoising loop's cached tensor blocks do not fit the decoder's sizes: hand them back first so
        // that peak memory is the larger of the two phases, not their sum.
        if model.vae != nil { TensorMemory.shared.trim() }
        let n = latents.shape[0]
        let perImage = latents.count / n
        return try (0..<n).map { i in
            let one = latents.withUnsafeBufferPointer { src in
                Tensor(shape: [1] + Array(latents.shape.dropFirst())) { out in
                    out.baseAddress!.update(from: src.baseAddress! + i * perImage, count: perImage)
                }
            }
            guard let vae = model.vae else { return try Image(tensorHWC: one) }
            if let tinyAutoencoder {
                guard tinyAutoencoder.config.upsamplingFactor == model.spatialFactor else {
                    throw PipelineError.invalidRequest("the tiny autoencoder upsamples by \(tinyAutoencoder.config.upsamplingFactor), "
                        + "the model's VAE by \(model.spatialFactor)")
                }
                return try Image(tensorHWC: tinyAutoencoder.image(fromUNetLatents: one))
            }
            return try Image(tensorHWC: vae.image(fromUNetLatents: one, tiling: vaeTiling))
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

    /// [2N, …] = (ε_u, ε_c) → ε_u + g·(ε_c − ε_u), [N, …] (TensorCore's element-wise kernels).
    static func guide(_ out: Tensor, scale g: Float, rescale phi: Float = 0) throws -> Tensor {
        var shape = out.shape
        shape[0] /= 2
        let half = out.count / 2
        let (uncond, cond) = out.withUnsafeBufferPointer { o in
            (Tensor(shape: shape) { $0.baseAddress!.update(from: o.baseAddress!, count: half) },
             Tensor(shape: shape) { $0.baseAddress!.update(from: o.baseAddress! + half, count: half) })
        }
        let guided = try Elementwise.axpy(g, Elementwise.sub(cond, uncond), uncond)
        return phi > 0 ? rescaled(guided, toDeviationOf: cond, phi: phi) : guided
    }

    /// diffusers' `rescale_noise_cfg`: per image n, x̂ = x · σ(cond_n) / σ(x_n), blended φ·x̂ + (1 − φ)·x, where σ
    /// is the standard deviation over the image's values (the unbiased correction cancels in the ratio).
    static func rescaled(_ x: Tensor, toDeviationOf cond: Tensor, phi: Float) -> Tensor {
        let n = x.shape[0], m = x.count / max(n, 1)
        func deviation(_ p: UnsafePointer<Float>) -> Double {
            var sum = 0.0, squares = 0.0
            for i in 0..<m { sum += Double(p[i]) }
            let mean = sum / Double(m)
            for i in 0..<m { let d = Double(p[i]) - mean; squares += d * d }
            return (squares / Double(max(m - 1, 1))).squareRoot()
        }
        return Tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xs in
                cond.withUnsafeBufferPointer { cs in
                    for b in 0..<n {
                        let xb = xs.baseAddress! + b * m, o = out.baseAddress! + b * m
                        let sx = deviation(xb), sc = deviation(cs.baseAddress! + b * m)
                        let factor = Float(sx > 0 ? Double(phi) * sc / sx + Double(1 - phi) : 1)
                        for i in 0..<m { o[i] = xb[i] * factor }
                    }
                }
            }
        }
    }
}
