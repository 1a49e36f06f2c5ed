// The sampler protocol the denoising loop drives, the noise-source protocol, and the names users know.
//
// One loop serves every sampler (the diffusers pattern), `Sampler.run`, the only denoising loop of the project:
//
//     var x = noise(latentShape) * sampler.initNoiseSigma          (or given latents at a start step)
//     for i in sampler.timesteps.indices {
//         let out = model(sampler.scaleModelInput(x, step: i), sampler.timesteps[i])   // + guidance
//         x = try sampler.step(modelOutput: out, step: i, sample: x, noise: &rng)
//     }
//
// Multi-evaluation methods need no special case: Heun lists each inner timestep twice and PNDM (PLMS)
// repeats its second timestep, exactly as diffusers' `scheduler.timesteps` do, so `timesteps.count` is
// the number of model evaluations.

import TensorCore

/// Standard normal noise for ancestral, SDE and DDPM steps (and the initial latents).
public protocol NoiseSource {
    /// A tensor of independent N(0, 1) values with the given shape.
    mutating func normal(_ shape: [Int]) -> Tensor
}

extension TorchGenerator: NoiseSource {
    /// `torch.randn(shape, generator=g)`, row-major in `shape`.
    public mutating func normal(_ shape: [Int]) -> Tensor { randn(shape) }
}

/// PyTorch-identical noise for tensors kept channels-last: asked for `[N, H, W, C]`, it draws
/// `torch.randn([N, C, H, W])` (what diffusers draws for the same latents) and returns it as NHWC.
public struct TorchNoise: NoiseSource, Sendable {
    public var generator: TorchGenerator
    /// When true, rank-4 requests are NHWC and drawn in NCHW order.
    public var channelsLast: Bool

    public init(seed: UInt64, channelsLast: Bool = true) {
        generator = TorchGenerator(seed: seed)
        self.channelsLast = channelsLast
    }

    public mutating func normal(_ shape: [Int]) -> Tensor {
        guard channelsLast, shape.count == 4 else { return generator.randn(shape) }
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let nchw = generator.randn([n, c, h, w])
        return Tensor(shape: shape) { out in
            nchw.withUnsafeBufferPointer { src in
                for b in 0..<n { for ch in 0..<c { for y in 0..<h { for x in 0..<w {
                    out[((b * h + y) * w + x) * c + ch] = src[((b * c + ch) * h + y) * w + x]
                } } } }
            }
        }
    }
}

/// Where the denoising loop starts.
public enum DenoisingStart {
    /// N(0, 1) noise (shape of the sample), scaled by the sampler's `initNoiseSigma`: text-to-image.
    case noise(Tensor)
    /// A sample already at evaluation `step` (e.g. image latents noised to that step's level for img2img).
    case latents(Tensor, step: Int)
}

/// Progress of the loop after one model evaluation and step.
public struct DenoisingStep {
    /// Evaluations done (counting any skipped by a later start) and in total.
    public var step: Int
    public var total: Int
    /// The sample after this step.
    public var sample: Tensor
}

/// A sampler configured for one run of `timesteps.count` model evaluations.
///
/// - Postcondition of `step`: the returned tensor has the shape of `sample`; after the last entry of
///   `timesteps` it is the denoised sample x₀ in the model's data space.
public protocol Sampler {
    /// Timestep passed to the model at each evaluation, in order (may repeat; may be fractional).
    var timesteps: [Double] { get }
    /// Standard deviation of the initial noise: the loop starts from N(0, 1) noise times this.
    var initNoiseSigma: Float { get }
    /// The model's input at evaluation `step` (x / √(σ²+1) for the Euler family, else x).
    func scaleModelInput(_ sample: Tensor, step: Int) throws -> Tensor
    /// Consumes the model output at evaluation `step` and returns the next sample. Stochastic
    /// samplers draw their noise from `noise` with `sample.shape`, in diffusers' order.
    mutating func step<N: NoiseSource>(modelOutput: Tensor, step: Int, sample: Tensor, noise: inout N) throws -> Tensor
    /// Clean data `sample` noised to the level of evaluation `step` with N(0, 1) `noise` (diffusers'
    /// `scheduler.add_noise` at the first kept timestep of img2img).
    func addNoise(to sample: Tensor, noise: Tensor, step: Int) throws -> Tensor
    /// Model evaluations per inference step (diffusers' `scheduler.order`: 2 for Heun, else 1).
    var order: Int { get }
}

extension Sampler {
    public func scaleModelInput(_ sample: Tensor, step: Int) throws -> Tensor { sample }
    public var order: Int { 1 }

    /// The evaluation img2img starts at for `strength` of `steps` inference steps (diffusers'
    /// `StableDiffusionImg2ImgPipeline.get_timesteps`):
    ///     init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
    ///     t_start = max(num_inference_steps - init_timestep, 0);  timesteps[t_start * scheduler.order:]
    /// Throws when `strength` is outside (0, 1] or leaves no step to denoise.
    public func startStep(strength: Double, steps: Int) throws -> Int {
        guard strength > 0, strength <= 1 else {
            throw SchedulerError.invalidConfig("strength must be in (0, 1], got \(strength)")
        }
        let initTimestep = min(Int(Double(steps) * strength), steps)
        guard initTimestep >= 1 else {
            throw SchedulerError.invalidConfig("strength \(strength) of \(steps) steps denoises no step; raise the strength or the steps")
        }
        return max(steps - initTimestep, 0) * order
    }

    /// Checks an `addNoise` call's arguments.
    func validateNoise(_ sample: Tensor, _ noise: Tensor, _ step: Int) throws {
        guard timesteps.indices.contains(step) else {
            throw SchedulerError.invalidStep("step \(step) outside 0..<\(timesteps.count)")
        }
        guard noise.shape == sample.shape else {
            throw SchedulerError.shapeMismatch("noise \(noise.shape) vs sample \(sample.shape)")
        }
    }

    /// The one denoising loop: from `start`, evaluates `model(scaledInput, timestep)` once per remaining entry
    /// of `timesteps` and steps. The model closure is where a pipeline applies classifier-free guidance;
    /// `progress` gets every step's sample.
    public mutating func run<N: NoiseSource>(from start: DenoisingStart, noise: inout N,
                                             progress: ((DenoisingStep) -> Void)? = nil,
                                             model: (Tensor, Double) throws -> Tensor) throws -> Tensor {
        var x: Tensor, first: Int
        switch start {
        case .noise(let z):
            // x_T = z · init_noise_sigma
            (x, first) = (Elementwise.scale(z, by: initNoiseSigma), 0)
        case .latents(let latents, let step):
            guard (0...timesteps.count).contains(step) else {
                throw SchedulerError.invalidStep("start step \(step) outside 0...\(timesteps.count)")
            }
            (x, first) = (latents, step)
        }
        for i in timesteps.indices.dropFirst(first) {
            let output = try model(try scaleModelInput(x, step: i), timesteps[i])
            x = try step(modelOutput: output, step: i, sample: x, noise: &noise)
            progress?(DenoisingStep(step: i + 1, total: timesteps.count, sample: x))
        }
        return x
    }

    /// Checks a step call's arguments (index in range, shapes equal).
    func validate(_ modelOutput: Tensor, _ sample: Tensor, _ step: Int) throws {
        guard timesteps.indices.contains(step) else {
            throw SchedulerError.invalidStep("step \(step) outside 0..<\(timesteps.count)")
        }
        guard modelOutput.shape == sample.shape else {
            throw SchedulerError.shapeMismatch("model output \(modelOutput.shape) vs sample \(sample.shape)")
        }
    }
}

/// Sampler names as users type them (`--sampler`).
public enum SamplerKind: String, CaseIterable, Sendable, Codable {
    case ddpm
    case ddim
    case pndm
    case euler
    case eulerAncestral = "euler_a"
    case heun
    case lms
    case dpmpp2m = "dpm++2m"
    case dpmpp2mSDE = "dpm++2m_sde"
    case unipc
    case lcm

    /// Parses a user-typed name: the raw values, case-insensitive, plus common spellings from other
    /// tools (`euler_ancestral`, `k_euler_a`, `dpmpp_2m`, `dpmpp_2m_sde`, `plms`, `uni_pc`, …).
    public init?(userName: String) {
        let key = userName.trimmingCharacters(in: .whitespaces).lowercased()
            .replacingOccurrences(of: "-", with: "_").replacingOccurrences(of: " ", with: "_")
        let stripped = key.hasPrefix("k_") ? String(key.dropFirst(2)) : key
        let aliases: [String: SamplerKind] = [
            "euler_ancestral": .eulerAncestral, "plms": .pndm,
            "dpmpp_2m": .dpmpp2m, "dpmpp2m": .dpmpp2m, "dpm++_2m": .dpmpp2m,
            "dpmpp_2m_sde": .dpmpp2mSDE, "dpmpp2m_sde": .dpmpp2mSDE, "dpm++_2m_sde": .dpmpp2mSDE,
            "uni_pc": .unipc,
        ]
        guard let kind = SamplerKind(rawValue: stripped) ?? aliases[stripped] else { return nil }
        self = kind
    }

    /// Name in A1111's `parameters` text ("DPM++ 2M", "Euler a", …).
    public var displayName: String {
        switch self {
        case .ddpm: return "DDPM"
        case .ddim: return "DDIM"
        case .pndm: return "PLMS"
        case .euler: return "Euler"
        case .eulerAncestral: return "Euler a"
        case .heun: return "Heun"
        case .lms: return "LMS"
        case .dpmpp2m: return "DPM++ 2M"
        case .dpmpp2mSDE: return "DPM++ 2M SDE"
        case .unipc: return "UniPC"
        case .lcm: return "LCM"
        }
    }

    /// Whether the sampler supports Karras σ spacing.
    public var supportsKarras: Bool {
        switch self {
        case .euler, .eulerAncestral, .heun, .lms, .dpmpp2m, .dpmpp2mSDE, .unipc: return true
        case .ddpm, .ddim, .pndm, .lcm: return false
        }
    }

    /// The diffusers class defaults this sampler resolves absent configuration keys with.
    public var defaults: SchedulerDefaults {
        var d = SchedulerDefaults.diffusers
        switch self {
        case .ddpm, .ddim: break
        case .pndm: d.setAlphaToOne = false
        case .euler, .eulerAncestral, .lms, .dpmpp2m, .dpmpp2mSDE, .unipc: d.timestepSpacing = .linspace
        case .lcm:
            (d.betaStart, d.betaEnd, d.betaSchedule, d.clipSample) = (0.00085, 0.012, .scaledLinear, false)
        case .heun:
            d.timestepSpacing = .linspace
            (d.betaStart, d.betaEnd, d.clipSample) = (0.00085, 0.012, false)
        }
        return d
    }

    /// Builds the sampler for `steps` inference steps.
    /// - Parameters:
    ///   - karras: Karras σ spacing; nil takes `use_karras_sigmas` from the config.
    ///   - eta: DDIM's η (0 = deterministic DDIM); ignored by the others.
    public func make(config: SchedulerConfig, steps: Int, karras: Bool? = nil, eta: Double = 0) throws -> any Sampler {
        let useKarras = karras ?? config.useKarrasSigmas ?? false
        if useKarras && !supportsKarras {
            throw SchedulerError.invalidConfig("\(rawValue) has no Karras sigma spacing (samplers with it: "
                + SamplerKind.allCases.filter(\.supportsKarras).map(\.rawValue).joined(separator: ", ") + ")")
        }
        let setup = try SamplerSetup(kind: self, config: config, steps: steps, karras: useKarras)
        switch self {
        case .ddpm: return try DDPMSampler(setup)
        case .ddim: return try DDIMSampler(setup, eta: eta)
        case .pndm: return try PNDMSampler(setup)
        case .euler: return try EulerSampler(setup, ancestral: false)
        case .eulerAncestral: return try EulerSampler(setup, ancestral: true)
        case .heun: return try HeunSampler(setup)
        case .lms: return try LMSSampler(setup)
        case .dpmpp2m: return try DPMSolverMultistepSampler(setup, stochastic: false)
        case .dpmpp2mSDE: return try DPMSolverMultistepSampler(setup, stochastic: true)
        case .unipc: return try UniPCSampler(setup)
        case .lcm: return try LCMSampler(setup)
        }
    }
}

/// A configuration resolved for one sampler class: noise schedule plus the keys that class reads.
struct SamplerSetup {
    let schedule: NoiseSchedule
    let prediction: PredictionType
    let spacing: TimestepSpacing
    let stepsOffset: Int
    let steps: Int
    let karras: Bool
    let config: SchedulerConfig
    let defaults: SchedulerDefaults

    init(kind: SamplerKind, config: SchedulerConfig, steps: Int, karras: Bool) throws {
        defaults = kind.defaults
        schedule = try NoiseSchedule(config: config, defaults: defaults)
        guard steps >= 1, steps <= schedule.numTrainTimesteps else {
            throw SchedulerError.invalidStep("steps must be in 1...\(schedule.numTrainTimesteps), got \(steps)")
        }
        prediction = config.predictionType ?? .epsilon
        spacing = config.timestepSpacing ?? defaults.timestepSpacing
        stepsOffset = config.stepsOffset ?? 0
        self.steps = steps
        self.karras = karras
        self.config = config
    }
}

// MARK: - Element-wise arithmetic on same-shaped tensors

/// Σ_k c_k · t_k element-wise (all tensors of one shape), accumulated in Float from zero, one term at a time
/// with TensorCore's `axpy`.
func combine(_ terms: [(Double, Tensor)]) -> Tensor {
    precondition(!terms.isEmpty && terms.allSatisfy { $0.1.shape == terms[0].1.shape }, "combine: shapes differ")
    return terms.reduce(Tensor(zeros: terms[0].1.shape)) { sum, term in
        try! Elementwise.axpy(Float(term.0), term.1, sum)       // shapes checked above
    }
}

/// Element-wise clamp to [−r, r].
func clamped(_ t: Tensor, _ r: Double) -> Tensor {
    let rf = Float(r)
    var out = t
    out.withUnsafeMutableBufferPointer { o in
        for i in o.indices { o[i] = min(max(o[i], -rf), rf) }
    }
    return out
}
