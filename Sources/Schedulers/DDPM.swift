// DDPM ancestral sampling (Ho et al. 2020) on a subset of timesteps.
// This implementation matches: diffusers DDPMScheduler (0.42), variance `fixed_small` / `fixed_large`.

import TensorCore

struct DDPMSampler: Sampler {
    let schedule: NoiseSchedule
    let prediction: PredictionType
    let variance: DDPMVarianceType
    let clipRange: Double?
    let integerTimesteps: [Int]
    let timesteps: [Double]
    var initNoiseSigma: Float { 1 }

    init(_ s: SamplerSetup) throws {
        schedule = s.schedule
        prediction = s.prediction
        variance = s.config.varianceType ?? .fixedSmall
        clipRange = (s.config.clipSample ?? s.defaults.clipSample) ? (s.config.clipSampleRange ?? 1) : nil
        integerTimesteps = s.spacing.integerTimesteps(steps: s.steps, trainSteps: s.schedule.numTrainTimesteps,
                                                      offset: s.stepsOffset)
        timesteps = integerTimesteps.map(Double.init)
    }

    mutating func step<N: NoiseSource>(modelOutput: Tensor, step: Int, sample: Tensor, noise: inout N) throws -> Tensor {
        try validate(modelOutput, sample, step)
        let t = integerTimesteps[step]
        let prev = step + 1 < integerTimesteps.count ? integerTimesteps[step + 1] : -1
        let a = Double(schedule.alphasCumprod[t])
        let aPrev = prev >= 0 ? Double(schedule.alphasCumprod[prev]) : 1
        let alphaT = a / aPrev, betaT = 1 - alphaT
        let x0c = prediction.denoised(alphaCumprod: a)
        var x0 = combine([(x0c.sample, sample), (x0c.model, modelOutput)])
        if let r = clipRange { x0 = clamped(x0, r) }
        // pred_prev_sample = (√alpha_prod_t_prev * current_beta_t / beta_prod_t) * pred_original_sample
        //                  + (√current_alpha_t * beta_prod_t_prev / beta_prod_t) * sample   (+ √variance * noise, t > 0)
        //                                                   (diffusers DDPMScheduler.step, formula (7) of the paper)
        var terms = [(aPrev.squareRoot() * betaT / (1 - a), x0), (alphaT.squareRoot() * (1 - aPrev) / (1 - a), sample)]
        if t > 0 {
            let v: Double
            switch variance {
            case .fixedSmall: v = max((1 - aPrev) / (1 - a) * betaT, 1e-20)
            case .fixedLarge: v = betaT
            }
            terms.append((v.squareRoot(), noise.normal(sample.shape)))
        }
        return combine(terms)
    }
}

extension DDPMSampler {
    func addNoise(to sample: Tensor, noise: Tensor, step: Int) throws -> Tensor {
        try validateNoise(sample, noise, step)
        return schedule.addNoise(to: sample, noise: noise, timestep: integerTimesteps[step])
    }
}
