// DPM-Solver++(2M) and its SDE variant (Lu et al. 2022), data prediction, midpoint solver.
// This implementation matches: diffusers DPMSolverMultistepScheduler (0.42) with `solver_order` 2,
// `algorithm_type` "dpmsolver++" / "sde-dpmsolver++", `solver_type` "midpoint", `lower_order_final`.
// Samples live in VP space: α_t = 1/√(σ²+1), σ_t = σ·α_t, λ = log α_t − log σ_t.

import Foundation
import TensorCore

extension SamplerSetup {
    /// Integer timesteps and float32 sigmas (one more than timesteps, ending in `finalSigma`) of the multistep
    /// VP solvers (diffusers' DPMSolverMultistepScheduler and UniPCMultistepScheduler `set_timesteps`): spaced
    /// timesteps with σ interpolated over t, or Karras σ mapped back to rounded timesteps (left fractional,
    /// then truncated, for DPM-Solver with the cosine schedule unless `roundCosineKarras`).
    func multistepSchedule(finalSigma: FinalSigmaType, roundCosineKarras: Bool) -> (timesteps: [Int], sigmas: [Float]) {
        let n = schedule.numTrainTimesteps
        var ts = spacing.dpmSolverTimesteps(steps: steps, trainSteps: n, offset: stepsOffset)
        let train = schedule.trainSigmas
        var sig: [Double]
        if karras {
            sig = SigmaSpacing.karras(sigmaMin: Double(train[0]), sigmaMax: Double(train[n - 1]), steps: steps)
            let logSigmas = train.map { Double(Foundation.log($0)) }
            let cosine = !roundCosineKarras && (config.betaSchedule ?? .linear) == .squaredcosCapV2 && config.trainedBetas == nil
            ts = sig.map {
                let t = SigmaSpacing.timestep(forSigma: $0, logSigmas: logSigmas)
                return Int(cosine ? t : t.rounded(.toNearestOrEven))
            }
        } else {
            sig = SigmaSpacing.interpolate(train, at: ts.map(Double.init))
        }
        return (ts, sig.map { Float($0) } + [finalSigma == .zero ? 0 : train[0]])
    }
}

struct DPMSolverMultistepSampler: Sampler {
    let prediction: PredictionType
    let stochastic: Bool
    let lowerOrderFinal: Bool
    let finalSigmaIsZero: Bool
    let integerTimesteps: [Int]
    let timesteps: [Double]
    let sigmas: [Float]
    var initNoiseSigma: Float { 1 }
    private var previousDenoised: Tensor?

    init(_ s: SamplerSetup, stochastic: Bool) throws {
        prediction = s.prediction
        self.stochastic = stochastic
        lowerOrderFinal = s.config.lowerOrderFinal ?? true
        let finalType = s.config.finalSigmasType ?? .zero
        finalSigmaIsZero = finalType == .zero
        (integerTimesteps, sigmas) = s.multistepSchedule(finalSigma: finalType, roundCosineKarras: false)
        timesteps = integerTimesteps.map(Double.init)
    }

    /// (α_t, σ_t, λ_t) of a σ-space noise level.
    static func vp(_ sigma: Float) -> (alpha: Double, sigma: Double, lambda: Double) {
        let s = Double(sigma)
        let alpha = 1 / (s * s + 1).squareRoot()
        return (alpha, s * alpha, log(alpha) - log(s * alpha))
    }

    /// alpha_t, sigma_t = self._sigma_to_alpha_sigma_t(sigma); noisy_samples = alpha_t * original_samples + sigma_t * noise
    ///                                                  (diffusers DPMSolverMultistepScheduler.add_noise)
    func addNoise(to sample: Tensor, noise: Tensor, step: Int) throws -> Tensor {
        try validateNoise(sample, noise, step)
        return Self.addNoise(to: sample, noise: noise, sigma: sigmas[step])
    }

    /// α·x + σ·n for the variance-preserving pair of `sigma` (UniPC's add_noise is the same line).
    static func addNoise(to sample: Tensor, noise: Tensor, sigma: Float) -> Tensor {
        let v = vp(sigma)
        return combine([(v.alpha, sample), (v.sigma, noise)])
    }

    mutating func step<N: NoiseSource>(modelOutput: Tensor, step i: Int, sample: Tensor, noise: inout N) throws -> Tensor {
        try validate(modelOutput, sample, i)
        let count = timesteps.count
        let lastFirstOrder = i == count - 1 && ((lowerOrderFinal && count < 15) || finalSigmaIsZero)
        let s0 = Self.vp(sigmas[i]), t = Self.vp(sigmas[i + 1])
        let c = prediction.denoised(alphaCumprod: s0.alpha * s0.alpha)
        let denoised = combine([(c.sample, sample), (c.model, modelOutput)])
        let z = stochastic ? noise.normal(sample.shape) : nil
        defer { previousDenoised = denoised }

        let h = t.lambda - s0.lambda
        // x_t = (sigma_t / sigma_s) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * D          (dpmsolver++)
        // x_t = (sigma_t / sigma_s * torch.exp(-h)) * sample + (alpha_t * (1 - torch.exp(-2.0 * h))) * D
        //       + sigma_t * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise                          (sde-dpmsolver++)
        // with D = D0 first order, D = D0 + 0.5 * D1 (midpoint, D1 = (D0 - D_prev) / r) second order.
        let a = stochastic ? t.sigma / s0.sigma * exp(-h) : t.sigma / s0.sigma
        let b = stochastic ? t.alpha * (1 - exp(-2 * h)) : -t.alpha * (exp(-h) - 1)
        var terms = [(a, sample)]
        if let older = previousDenoised, !lastFirstOrder {
            let s1 = Self.vp(sigmas[i - 1])
            let r = (s0.lambda - s1.lambda) / h
            // D0 + ½·(D0 − D1_prev)/r
            terms += [(b * (1 + 0.5 / r), denoised), (-b * 0.5 / r, older)]
        } else {
            terms.append((b, denoised))
        }
        if let z { terms.append((t.sigma * max(1 - exp(-2 * h), 0).squareRoot(), z)) }
        return combine(terms)
    }
}
