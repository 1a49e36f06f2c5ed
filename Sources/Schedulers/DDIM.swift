// DDIM (Song et al. 2021), deterministic for η = 0.
// This implementation matches: diffusers DDIMScheduler (0.42), `use_clipped_model_output=False`.

import TensorCore

struct DDIMSampler: Sampler {
    let schedule: NoiseSchedule
    let prediction: PredictionType
    let eta: Double
    let clipRange: Double?
    let finalAlphaCumprod: Double
    let stepRatio: Int
    let integerTimesteps: [Int]
    let timesteps: [Double]
    var initNoiseSigma: Float { 1 }

    init(_ s: SamplerSetup, eta: Double) throws {
        guard eta >= 0 else { throw SchedulerError.invalidConfig("DDIM eta must be ≥ 0, got \(eta)") }
        schedule = s.schedule
        prediction = s.prediction
        self.eta = eta
        clipRange = (s.config.clipSample ?? s.defaults.clipSample) ? (s.config.clipSampleRange ?? 1) : nil
        finalAlphaCumprod = (s.config.setAlphaToOne ?? s.defaults.setAlphaToOne) ? 1 : Double(s.schedule.alphasCumprod[0])
        stepRatio = s.schedule.numTrainTimesteps / s.steps
        integerTimesteps = s.spacing.integerTimesteps(steps: s.steps, trainSteps: s.schedule.numTrainTimesteps,
                                                      offset: s.stepsOffset)
        timesteps = integerTimesteps.map(Double.init)
    }

    mutating func step<N: NoiseSource>(modelOutput: Tensor, step: Int, sample: Tensor, noise: inout N) throws -> Tensor {
        try validate(modelOutput, sample, step)
        let t = integerTimesteps[step], prev = t - stepRatio
        let a = Double(schedule.alphasCumprod[t])
        let aPrev = prev >= 0 ? Double(schedule.alphasCumprod[prev]) : finalAlphaCumprod
        let x0c = prediction.denoised(alphaCumprod: a), epsc = prediction.epsilon(alphaCumprod: a)
        // x₀ from the parameterization (pred_original_sample), ε likewise (pred_epsilon)
        var x0 = combine([(x0c.sample, sample), (x0c.model, modelOutput)])
        if let r = clipRange { x0 = clamped(x0, r) }
        // variance = (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev); std = eta * √variance
        // prev_sample = √alpha_prod_t_prev * pred_original_sample + √(1 - alpha_prod_t_prev - std²) * pred_epsilon (+ std * noise)
        let variance = (1 - aPrev) / (1 - a) * (1 - a / aPrev)
        let std = eta * variance.squareRoot()
        let direction = max(1 - aPrev - std * std, 0).squareRoot()
        var terms = [(aPrev.squareRoot(), x0), (direction * epsc.sample, sample), (direction * epsc.model, modelOutput)]
        if eta > 0 { terms.append((std, noise.normal(sample.shape))) }
        return combine(terms)
    }
}

extension DDIMSampler {
    func addNoise(to sample: Tensor, noise: Tensor, step: Int) throws -> Tensor {
        try validateNoise(sample, noise, step)
        return schedule.addNoise(to: sample, noise: noise, timestep: integerTimesteps[step])
    }
}
