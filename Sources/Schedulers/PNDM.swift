// PNDM (Liu et al. 2022): Runge–Kutta (PRK) warm-up, then linear multistep (PLMS) in ε.
// This implementation matches: diffusers PNDMScheduler (0.42). With `skip_prk_steps` (Stable
// Diffusion's setting) the second timestep is evaluated twice (an improved-Euler warm-up); without it
// the first three intervals take 4 half-step evaluations each, as diffusers does.

import TensorCore

struct PNDMSampler: Sampler {
    let schedule: NoiseSchedule
    let prediction: PredictionType
    let finalAlphaCumprod: Double
    let stepRatio: Int
    /// Number of leading entries of `integerTimesteps` that are PRK evaluations.
    let prkCount: Int
    let integerTimesteps: [Int]
    let timesteps: [Double]
    var initNoiseSigma: Float { 1 }

    private var ets: [Tensor] = []
    private var prkAccumulator: Tensor?
    private var heldSample: Tensor?
    /// Step calls so far (diffusers' `counter`): img2img starts later in `timesteps` with the counter at 0.
    private var counter = 0

    init(_ s: SamplerSetup) throws {
        guard s.prediction != .sample else {
            throw SchedulerError.invalidConfig("pndm supports prediction_type epsilon and v_prediction, not sample")
        }
        schedule = s.schedule
        prediction = s.prediction
        finalAlphaCumprod = (s.config.setAlphaToOne ?? s.defaults.setAlphaToOne) ? 1 : Double(s.schedule.alphasCumprod[0])
        stepRatio = s.schedule.numTrainTimesteps / s.steps
        let ascending = Array(s.spacing.integerTimesteps(steps: s.steps, trainSteps: s.schedule.numTrainTimesteps,
                                                         offset: s.stepsOffset).reversed())
        if s.config.skipPrkSteps ?? false {
            // t₀ < … < t_{n−1}: visit t_{n−1}, t_{n−2}, t_{n−2}, t_{n−3}, …, t₀
            let n = ascending.count
            let visits = Array(ascending.dropLast()) + (n >= 2 ? [ascending[n - 2]] : []) + [ascending[n - 1]]
            integerTimesteps = visits.reversed()
            prkCount = 0
        } else {
            guard s.steps >= 4 else {
                throw SchedulerError.invalidStep("pndm with PRK warm-up (skip_prk_steps false) needs at least 4 steps, got \(s.steps)")
            }
            // each of the last 4 timesteps and its half step, every point but the ends twice
            let half = stepRatio / 2
            let points = ascending.suffix(4).flatMap { [$0, $0 + half] }.dropLast()
            let prk = Array(points.flatMap { [$0, $0] }.dropFirst().dropLast())
            integerTimesteps = prk.reversed() + ascending.dropLast(3).reversed()
            prkCount = prk.count
        }
        timesteps = integerTimesteps.map(Double.init)
    }

    mutating func step<N: NoiseSource>(modelOutput: Tensor, step: Int, sample: Tensor, noise: inout N) throws -> Tensor {
        try validate(modelOutput, sample, step)
        defer { counter += 1 }
        return counter < prkCount ? prkStep(modelOutput, counter, step, sample) : plmsStep(modelOutput, counter, step, sample)
    }

    /// Runge–Kutta step: four evaluations per interval, weights 1/6, 1/3, 1/3, 1/6.
    private mutating func prkStep(_ m: Tensor, _ i: Int, _ step: Int, _ sample: Tensor) -> Tensor {
        let diff = i % 2 == 1 ? 0 : stepRatio / 2
        let prev = integerTimesteps[step] - diff
        let t = integerTimesteps[i / 4 * 4]
        var output = m
        switch i % 4 {
        case 0:
            prkAccumulator = combine([(1.0 / 6, m)])
            ets.append(m)
            heldSample = sample
        case 1, 2:
            prkAccumulator = combine([(1, prkAccumulator ?? m), (1.0 / 3, m)])
        default:
            output = combine([(1, prkAccumulator ?? m), (1.0 / 6, m)])
            prkAccumulator = nil
        }
        return previousSample(heldSample ?? sample, t, prev, output)
    }

    /// Linear multistep step on the last (up to) four ε.
    private mutating func plmsStep(_ m: Tensor, _ i: Int, _ step: Int, _ sample: Tensor) -> Tensor {
        var t = integerTimesteps[step], prev = t - stepRatio
        var x = sample
        if i != 1 {
            ets = Array(ets.suffix(3)) + [m]
        } else {
            prev = t
            t += stepRatio
        }
        let e = ets
        let output: Tensor
        switch (e.count, i) {
        case (1, 0):
            output = m
            heldSample = sample
        case (1, 1):
            output = combine([(0.5, m), (0.5, e[0])])
            x = heldSample ?? sample
            heldSample = nil
        case (2, _):
            output = combine([(1.5, e[1]), (-0.5, e[0])])
        case (3, _):
            output = combine([(23.0 / 12, e[2]), (-16.0 / 12, e[1]), (5.0 / 12, e[0])])
        default:
            output = combine([(55.0 / 24, e[3]), (-59.0 / 24, e[2]), (37.0 / 24, e[1]), (-9.0 / 24, e[0])])
        }
        return previousSample(x, t, prev, output)
    }

    /// x_{t_prev} from x_t and ε (formula (9) of the PNDM paper; diffusers PNDMScheduler._get_prev_sample):
    ///     prev_sample = (alpha_prod_t_prev / alpha_prod_t) ** 0.5 * sample
    ///                   - (alpha_prod_t_prev - alpha_prod_t) * model_output / model_output_denom_coeff
    private func previousSample(_ x: Tensor, _ t: Int, _ prev: Int, _ output: Tensor) -> Tensor {
        let a = Double(schedule.alphasCumprod[t])
        let aPrev = prev >= 0 ? Double(schedule.alphasCumprod[prev]) : finalAlphaCumprod
        let eps = prediction.epsilon(alphaCumprod: a)
        let denominator = a * (1 - aPrev).squareRoot() + (a * (1 - a) * aPrev).squareRoot()
        let c = (aPrev - a) / denominator
        return combine([((aPrev / a).squareRoot() - c * eps.sample, x), (-c * eps.model, output)])
    }
}

extension PNDMSampler {
    func addNoise(to sample: Tensor, noise: Tensor, step: Int) throws -> Tensor {
        try validateNoise(sample, noise, step)
        return schedule.addNoise(to: sample, noise: noise, timestep: integerTimesteps[step])
    }
}
