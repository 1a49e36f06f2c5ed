// Euler and Euler ancestral ("Euler a") samplers in σ space (Karras et al. 2022, Algorithm 1 with
// s_churn = 0; k-diffusion's `sample_euler_ancestral`).
// This implementation matches: diffusers EulerDiscreteScheduler and EulerAncestralDiscreteScheduler (0.42).

import Foundation
import TensorCore

extension SamplerSetup {
    /// Float timesteps and float32 sigmas (one more than timesteps, ending in `finalSigma`) of the
    /// σ-space samplers, with Karras spacing between the ends of the interpolated sigmas when asked.
    func sigmaSchedule(finalSigma: FinalSigmaType = .zero) -> (timesteps: [Double], sigmas: [Float]) {
        let train = schedule.trainSigmas
        var timesteps = spacing.floatTimesteps(steps: steps, trainSteps: schedule.numTrainTimesteps, offset: stepsOffset)
        var sigmas = SigmaSpacing.interpolate(train, at: timesteps)
        if karras, let hi = sigmas.first, let lo = sigmas.last {
            sigmas = SigmaSpacing.karras(sigmaMin: lo, sigmaMax: hi, steps: steps)
            let logSigmas = train.map { Double(Foundation.log($0)) }
            timesteps = sigmas.map { Double(Float(SigmaSpacing.timestep(forSigma: $0, logSigmas: logSigmas))) }
        }
        let last: Float
        switch finalSigma {
        case .zero: last = 0
        case .sigmaMin: last = train[0]
        }
        return (timesteps, sigmas.map { Float($0) } + [last])
    }

    /// Initial noise scale of the σ-space samplers: σ_max, or √(σ_max²+1) with leading spacing.
    func sigmaInitNoise(_ sigmas: [Float]) -> Float {
        let m = sigmas.max() ?? 1
        return spacing == .leading ? (m * m + 1).squareRoot() : m
    }
}

/// x / √(σ²+1): the model's input in σ space.
func scaledBySigma(_ sample: Tensor, _ sigma: Float) -> Tensor {
    let d = (sigma * sigma + 1).squareRoot()
    var out = sample
    out.withUnsafeMutableBufferPointer { o in
        for i in o.indices { o[i] /= d }
    }
    return out
}

struct EulerSampler: Sampler {
    let prediction: PredictionType
    let ancestral: Bool
    let timesteps: [Double]
    /// σ_i for each step, then the final σ.
    let sigmas: [Float]
    let initNoiseSigma: Float

    init(_ s: SamplerSetup, ancestral: Bool) throws {
        if ancestral && s.prediction == .sample {
            throw SchedulerError.invalidConfig("euler_a supports prediction_type epsilon and v_prediction, not sample")
        }
        prediction = s.prediction
        self.ancestral = ancestral
        (timesteps, sigmas) = s.sigmaSchedule(finalSigma: ancestral ? .zero : (s.config.finalSigmasType ?? .zero))
        initNoiseSigma = s.sigmaInitNoise(sigmas)
    }

    func scaleModelInput(_ sample: Tensor, step: Int) throws -> Tensor {
        guard sigmas.indices.contains(step) else { throw SchedulerError.invalidStep("step \(step) outside 0..<\(timesteps.count)") }
        return scaledBySigma(sample, sigmas[step])
    }

    mutating func step<N: NoiseSource>(modelOutput: Tensor, step: Int, sample: Tensor, noise: inout N) throws -> Tensor {
        try validate(modelOutput, sample, step)
        let sigma = Double(sigmas[step]), next = Double(sigmas[step + 1])
        let x0 = prediction.denoised(sigma: sigma)
        // target σ of the deterministic part, and the σ of fresh noise added after it
        var down = next, up = 0.0
        if ancestral {
            up = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).squareRoot()
            down = (next * next - up * up).squareRoot()
        }
        // derivative = (sample - pred_original_sample) / sigma; dt = sigma_down - sigma
        // prev_sample = sample + derivative * dt          (diffusers EulerDiscreteScheduler.step; ancestral:
        // prev_sample = prev_sample + noise * sigma_up     EulerAncestralDiscreteScheduler.step)
        let r = (down - sigma) / sigma
        var terms = [(1 + r * (1 - x0.sample), sample), (-r * x0.model, modelOutput)]
        if ancestral { terms.append((up, noise.normal(sample.shape))) }
        return combine(terms)
    }
}

/// Samplers that walk a σ schedule (exposed for inspection and the `parameters` text).
protocol SigmaSampler: Sampler {
    /// σ per model evaluation, then the final σ.
    var sigmas: [Float] { get }
}

extension SigmaSampler {
    /// noisy_samples = original_samples + noise * sigma            (diffusers EulerDiscreteScheduler.add_noise)
    func addNoise(to sample: Tensor, noise: Tensor, step: Int) throws -> Tensor {
        try validateNoise(sample, noise, step)
        return combine([(1, sample), (Double(sigmas[step]), noise)])
    }
}

extension EulerSampler: SigmaSampler {}
extension HeunSampler: SigmaSampler {}
extension LMSSampler: SigmaSampler {}
extension DPMSolverMultistepSampler: SigmaSampler {}
