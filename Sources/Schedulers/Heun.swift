// Heun's method in σ space (Karras et al. 2022, Algorithm 1 second-order correction, s_churn = 0).
// This implementation matches: diffusers HeunDiscreteScheduler (0.42). Its timesteps list every inner
// timestep twice: the first evaluation takes an Euler step, the second averages the two slopes and
// redoes the step; the last interval (to σ = 0) is a plain Euler step.

import TensorCore

struct HeunSampler: Sampler {
    let prediction: PredictionType
    let clipRange: Double?
    let timesteps: [Double]
    /// σ per evaluation (inner sigmas doubled), then 0.
    let sigmas: [Float]
    let initNoiseSigma: Float

    private var firstSlope: Tensor?
    private var firstSample: Tensor?
    private var dt: Double = 0

    init(_ s: SamplerSetup) throws {
        prediction = s.prediction
        clipRange = (s.config.clipSample ?? s.defaults.clipSample) ? (s.config.clipSampleRange ?? 1) : nil
        let (t, sig) = s.sigmaSchedule()
        timesteps = [t[0]] + t.dropFirst().flatMap { [$0, $0] }
        sigmas = [sig[0]] + sig.dropFirst().dropLast().flatMap { [$0, $0] } + [0]
        initNoiseSigma = s.sigmaInitNoise(sigmas)
    }

    var order: Int { 2 }

    func scaleModelInput(_ sample: Tensor, step: Int) throws -> Tensor {
        guard timesteps.indices.contains(step) else { throw SchedulerError.invalidStep("step \(step) outside 0..<\(timesteps.count)") }
        return scaledBySigma(sample, sigmas[step])
    }

    mutating func step<N: NoiseSource>(modelOutput: Tensor, step: Int, sample: Tensor, noise: inout N) throws -> Tensor {
        try validate(modelOutput, sample, step)
        let firstOrder = firstSlope == nil
        let sigma = Double(firstOrder ? sigmas[step] : sigmas[step - 1])
        let next = Double(firstOrder ? sigmas[step + 1] : sigmas[step])
        let at = firstOrder ? sigma : next          // σ the model output was evaluated at
        let c = prediction.denoised(sigma: at)
        var x0 = combine([(c.sample, sample), (c.model, modelOutput)])
        if let r = clipRange { x0 = clamped(x0, r) }
        // derivative = (sample - pred_original_sample) / sigma_hat
        // first order: prev_sample = sample + derivative * dt; second: sample + (derivative_1 + derivative_2) / 2 * dt
        //                                                          (diffusers HeunDiscreteScheduler.step)
        let slope = combine([(1 / at, sample), (-1 / at, x0)])  // (x − x₀)/σ
        if let previous = firstSlope, let start = firstSample {
            firstSlope = nil
            firstSample = nil
            return combine([(1, start), (dt / 2, previous), (dt / 2, slope)])
        }
        dt = next - sigma
        firstSlope = slope
        firstSample = sample
        return combine([(1, sample), (dt, slope)])
    }
}
