// NoiseSchedule: betas, ᾱ (alphas_cumprod), sigmas, forward noising and training targets.
//
// Matches the constructor arithmetic of diffusers' schedulers (torch float32 betas, cumulative product
// accumulated in double as torch's CPU cumprod does) and `add_noise` / `get_velocity` of DDPMScheduler.
// Sampling and training share this one object: x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε.

import Foundation
import TensorCore

/// The forward diffusion process of a model: β_t, ᾱ_t and the derived quantities.
public struct NoiseSchedule: Sendable, Equatable {
    /// β_t for t = 0 ..< numTrainTimesteps (float32 as in diffusers).
    public let betas: [Float]
    /// ᾱ_t = ∏_{s ≤ t} (1 − β_s).
    public let alphasCumprod: [Float]

    public var numTrainTimesteps: Int { betas.count }

    /// Builds β from a schedule kind; `trainedBetas` (when given) wins, as in diffusers.
    public init(numTrainTimesteps: Int, betaStart: Double, betaEnd: Double, schedule: BetaSchedule,
                trainedBetas: [Double]? = nil) throws {
        guard numTrainTimesteps >= 2 else {
            throw SchedulerError.invalidConfig("num_train_timesteps must be at least 2, got \(numTrainTimesteps)")
        }
        var b: [Float]
        if let trained = trainedBetas {
            guard trained.count == numTrainTimesteps else {
                throw SchedulerError.invalidConfig("trained_betas has \(trained.count) values, num_train_timesteps is \(numTrainTimesteps)")
            }
            b = trained.map { Float($0) }
        } else {
            switch schedule {
            case .linear:
                b = Self.linspace(betaStart, betaEnd, numTrainTimesteps).map { Float($0) }
            case .scaledLinear:
                b = Self.linspace(betaStart.squareRoot(), betaEnd.squareRoot(), numTrainTimesteps).map {
                    let r = Float($0)
                    return r * r
                }
            case .squaredcosCapV2:
                b = Self.cosineBetas(numTrainTimesteps)
            }
        }
        guard b.allSatisfy({ $0 > 0 && $0 < 1 }) else {
            throw SchedulerError.invalidConfig("betas must lie in (0, 1); check beta_start/beta_end/trained_betas")
        }
        betas = b
        var acc = 1.0
        alphasCumprod = b.map { beta in
            acc *= Double(1 - beta)
            return Float(acc)
        }
    }

    /// The schedule a configuration describes, with `defaults` for its absent keys.
    public init(config: SchedulerConfig, defaults: SchedulerDefaults = .diffusers) throws {
        try self.init(numTrainTimesteps: config.numTrainTimesteps ?? 1000,
                      betaStart: config.betaStart ?? defaults.betaStart,
                      betaEnd: config.betaEnd ?? defaults.betaEnd,
                      schedule: config.betaSchedule ?? defaults.betaSchedule,
                      trainedBetas: config.trainedBetas)
    }

    /// σ_t = √((1 − ᾱ_t) / ᾱ_t) for every training timestep (float32 arithmetic, as diffusers).
    public var trainSigmas: [Float] {
        alphasCumprod.map { ((1 - $0) / $0).squareRoot() }
    }

    /// Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t), the weight min-SNR training clips.
    public func snr(_ t: Int) -> Double {
        let a = Double(alphasCumprod[t])
        return a / (1 - a)
    }

    /// Min-SNR-γ loss weight (Hang et al. 2023) as diffusers' training examples apply it:
    /// min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR + 1) for v, min(SNR, γ) for x₀ prediction.
    public func minSNRWeight(_ t: Int, gamma: Double, prediction: PredictionType) -> Double {
        let s = snr(t), clipped = min(s, gamma)
        switch prediction {
        case .epsilon: return clipped / s
        case .vPrediction: return clipped / (s + 1)
        case .sample: return clipped
        }
    }

    // MARK: - Forward process and targets ([N, …] tensors, one timestep per batch element)

    /// x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε (`add_noise`).
    public func addNoise(_ x0: Tensor, noise: Tensor, timesteps: [Int]) throws -> Tensor {
        try perSample(x0, noise, timesteps, "addNoise") { ac in (ac.squareRoot(), (1 - ac).squareRoot()) }
    }

    /// v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀ (`get_velocity`).
    public func velocity(_ x0: Tensor, noise: Tensor, timesteps: [Int]) throws -> Tensor {
        try perSample(noise, x0, timesteps, "velocity") { ac in (ac.squareRoot(), -(1 - ac).squareRoot()) }
    }

    /// The regression target of a training step for a prediction type (ε, v or x₀).
    public func trainingTarget(_ prediction: PredictionType, x0: Tensor, noise: Tensor,
                               timesteps: [Int]) throws -> Tensor {
        switch prediction {
        case .epsilon: return noise
        case .sample: return x0
        case .vPrediction: return try velocity(x0, noise: noise, timesteps: timesteps)
        }
    }

    /// out[n] = a(ᾱ_{t_n})·x[n] + b(ᾱ_{t_n})·y[n] for each batch element n.
    private func perSample(_ x: Tensor, _ y: Tensor, _ timesteps: [Int], _ what: String,
                           coefficients: (Float) -> (Float, Float)) throws -> Tensor {
        guard x.shape == y.shape, let n = x.shape.first, n == timesteps.count else {
            throw SchedulerError.shapeMismatch("\(what): \(x.shape) and \(y.shape) with \(timesteps.count) timesteps")
        }
        for t in timesteps where !(0..<numTrainTimesteps).contains(t) {
            throw SchedulerError.invalidStep("\(what): timestep \(t) outside 0..<\(numTrainTimesteps)")
        }
        let per = n == 0 ? 0 : x.count / n
        var out = Tensor(uninitializedShape: x.shape)
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeBufferPointer { ys in
                out.withUnsafeMutableBufferPointer { o in
                    for b in 0..<n {
                        let (ca, cb) = coefficients(alphasCumprod[timesteps[b]])
                        for i in b * per..<(b + 1) * per { o[i] = ca * xs[i] + cb * ys[i] }
                    }
                }
            }
        }
        return out
    }

    // MARK: - Construction helpers

    /// numpy/torch `linspace(a, b, n)` in double.
    static func linspace(_ a: Double, _ b: Double, _ n: Int) -> [Double] {
        guard n > 1 else { return [a] }
        let step = (b - a) / Double(n - 1)
        return (0..<n).map { i in i == n - 1 ? b : a + Double(i) * step }
    }

    /// Glide's cosine schedule: β_i = min(1 − ᾱ((i+1)/N) / ᾱ(i/N), 0.999).
    static func cosineBetas(_ n: Int) -> [Float] {
        func alphaBar(_ t: Double) -> Double {
            let c = cos((t + 0.008) / 1.008 * Double.pi / 2)
            return c * c
        }
        return (0..<n).map { i in
            Float(min(1 - alphaBar(Double(i + 1) / Double(n)) / alphaBar(Double(i) / Double(n)), 0.999))
        }
    }
}

/// Values a diffusers scheduler class uses for keys absent from its configuration.
public struct SchedulerDefaults: Sendable, Equatable {
    public var betaStart: Double
    public var betaEnd: Double
    public var timestepSpacing: TimestepSpacing
    public var clipSample: Bool
    public var setAlphaToOne: Bool
    /// `beta_schedule` when absent (linear for all but LCM's class, which defaults to scaled_linear).
    public var betaSchedule: BetaSchedule = .linear

    /// The defaults shared by most diffusers schedulers (linear 1e-4 → 0.02, leading spacing).
    public static let diffusers = SchedulerDefaults(betaStart: 0.0001, betaEnd: 0.02, timestepSpacing: .leading,
                                                    clipSample: true, setAlphaToOne: true)
}

extension NoiseSchedule {
    /// sqrt_alpha_prod * original_samples + sqrt_one_minus_alpha_prod * noise at integer timestep `t`
    /// (diffusers DDPMScheduler/DDIMScheduler/PNDMScheduler.add_noise).
    func addNoise(to sample: Tensor, noise: Tensor, timestep t: Int) -> Tensor {
        let a = Double(alphasCumprod[t])
        return combine([(a.squareRoot(), sample), ((1 - a).squareRoot(), noise)])
    }
}
