// Latent Consistency Model sampling (Luo et al. 2023): each step maps x_t straight to a denoised sample
// with the consistency boundary conditions, then re-noises it to the next (much lower) timestep.
// This implementation matches: diffusers LCMScheduler (0.42) without thresholding and without custom timesteps.
// The step rule is DDPM-like, not σ-space: x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε; timestep spacing from the config is
// not used (LCM picks its own timesteps from the distillation schedule, `TimestepSpacing.lcm`).

import TensorCore

struct LCMSampler: Sampler {
    let schedule: NoiseSchedule
    let prediction: PredictionType
    let clipRange: Double?
    let timestepScaling: Double
    let integerTimesteps: [Int]
    let timesteps: [Double]
    var initNoiseSigma: Float { 1 }

    init(_ s: SamplerSetup) throws {
        schedule = s.schedule
        prediction = s.prediction
        clipRange = (s.config.clipSample ?? s.defaults.clipSample) ? (s.config.clipSampleRange ?? 1) : nil
        timestepScaling = s.config.timestepScaling ?? 10
        integerTimesteps = try TimestepSpacing.lcm(steps: s.steps, trainSteps: s.schedule.numTrainTimesteps,
                                              originalSteps: s.config.originalInferenceSteps ?? 50)
        timesteps = integerTimesteps.map(Double.init)
    }

    /// (c_skip, c_out) of the boundary conditions at timestep t with σ_data = 0.5.
    func boundaryScalings(_ t: Int) -> (skip: Double, out: Double) {
        // scaled_timestep = timestep * self.config.timestep_scaling
        // c_skip = sigma_data**2 / (scaled_timestep**2 + sigma_data**2)
        // c_out = scaled_timestep / (scaled_timestep**2 + sigma_data**2) ** 0.5
        let scaled = Double(t) * timestepScaling, data2 = 0.25
        return (data2 / (scaled * scaled + data2), scaled / (scaled * scaled + data2).squareRoot())
    }

    /// img2img start: diffusers' `LCMScheduler.add_noise`, √ᾱ_t·x + √(1−ᾱ_t)·n at the step's timestep.
    func addNoise(to sample: Tensor, noise: Tensor, step: Int) throws -> Tensor {
        try validateNoise(sample, noise, step)
        return schedule.addNoise(to: sample, noise: noise, timestep: integerTimesteps[step])
    }

    mutating func step<N: NoiseSource>(modelOutput: Tensor, step: Int, sample: Tensor, noise: inout N) throws -> Tensor {
        try validate(modelOutput, sample, step)
        let t = integerTimesteps[step]
        let a = Double(schedule.alphasCumprod[t])
        let c = boundaryScalings(t)
        // predicted_original_sample from the parameterization (e.g. ε: (sample - √beta_prod_t * model_output) / √alpha_prod_t)
        let x0c = prediction.denoised(alphaCumprod: a)
        // denoised = c_out * predicted_original_sample + c_skip * sample
        let denoised: Tensor
        if let r = clipRange {
            let x0 = clamped(combine([(x0c.sample, sample), (x0c.model, modelOutput)]), r)
            denoised = combine([(c.out, x0), (c.skip, sample)])
        } else {
            denoised = combine([(c.out * x0c.sample + c.skip, sample), (c.out * x0c.model, modelOutput)])
        }
        // no noise after the last step: prev_sample = denoised
        guard step + 1 < integerTimesteps.count else { return denoised }
        // prev_sample = alpha_prod_t_prev.sqrt() * denoised + beta_prod_t_prev.sqrt() * noise
        let aPrev = Double(schedule.alphasCumprod[integerTimesteps[step + 1]])
        return combine([(aPrev.squareRoot(), denoised), ((1 - aPrev).squareRoot(), noise.normal(sample.shape))])
    }
}
