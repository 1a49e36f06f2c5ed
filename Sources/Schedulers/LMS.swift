// Linear multistep (LMS) in σ space, order 4 (k-diffusion's `sample_lms`).
// This implementation matches: diffusers LMSDiscreteScheduler (0.42). The coefficients integrate the
// Lagrange basis polynomials through the last σ's over [σ_i, σ_{i+1}]; diffusers uses adaptive
// quadrature, here a 4-point Gauss–Legendre rule, exact for these polynomials (degree ≤ 3).

import TensorCore

struct LMSSampler: Sampler {
    static let order = 4

    let prediction: PredictionType
    let timesteps: [Double]
    let sigmas: [Float]
    let initNoiseSigma: Float
    private var slopes: [Tensor] = []

    init(_ s: SamplerSetup) throws {
        prediction = s.prediction
        (timesteps, sigmas) = s.sigmaSchedule()
        initNoiseSigma = s.sigmaInitNoise(sigmas)
    }

    func scaleModelInput(_ sample: Tensor, step: Int) throws -> Tensor {
        guard timesteps.indices.contains(step) else { throw SchedulerError.invalidStep("step \(step) outside 0..<\(timesteps.count)") }
        return scaledBySigma(sample, sigmas[step])
    }

    mutating func step<N: NoiseSource>(modelOutput: Tensor, step: Int, sample: Tensor, noise: inout N) throws -> Tensor {
        try validate(modelOutput, sample, step)
        let sigma = Double(sigmas[step])
        let c = prediction.denoised(sigma: sigma)
        // derivative = (sample - pred_original_sample) / sigma
        // prev_sample = sample + sum(coeff * derivative for coeff, derivative in zip(lms_coeffs, reversed(derivatives)))
        //                                                          (diffusers LMSDiscreteScheduler.step)
        slopes.append(combine([((1 - c.sample) / sigma, sample), (-c.model / sigma, modelOutput)]))
        if slopes.count > Self.order { slopes.removeFirst() }
        let order = min(step + 1, Self.order)
        var terms = [(1.0, sample)]
        for k in 0..<min(order, slopes.count) {      // zip(…) stops at the slopes seen since the start
            terms.append((coefficient(order: order, step: step, current: k), slopes[slopes.count - 1 - k]))
        }
        return combine(terms)
    }

    /// ∫_{σ_i}^{σ_{i+1}} ∏_{k ≠ current} (τ − σ_{i−k}) / (σ_{i−current} − σ_{i−k}) dτ.
    private func coefficient(order: Int, step i: Int, current: Int) -> Double {
        func basis(_ tau: Double) -> Double {
            var p = 1.0
            for k in 0..<order where k != current {
                p *= (tau - Double(sigmas[i - k])) / (Double(sigmas[i - current]) - Double(sigmas[i - k]))
            }
            return p
        }
        let a = Double(sigmas[i]), b = Double(sigmas[i + 1])
        let nodes = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526]
        let weights = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538]
        let mid = (a + b) / 2, half = (b - a) / 2
        return zip(nodes, weights).reduce(0) { $0 + $1.1 * basis(mid + half * $1.0) } * half
    }
}
