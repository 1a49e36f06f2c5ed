// Timestep and sigma spacing: which training timesteps (or noise levels) a run of n steps visits.
//
// Ports the `set_timesteps` arithmetic of diffusers 0.42: integer timesteps for DDPM/DDIM/PNDM and
// DPM-Solver (and UniPC), float timesteps for the Euler family, LCM's pick from its distillation schedule,
// linear interpolation of σ over t, Karras et al. (2022) σ spacing (ρ = 7) and the inverse map σ → t by interpolation in log σ (`_sigma_to_t`).

import Foundation

extension TimestepSpacing {
    /// Timesteps of DDPM/DDIM/PNDM-style schedulers, descending (`np.int64` arithmetic of diffusers).
    public func integerTimesteps(steps: Int, trainSteps: Int, offset: Int) -> [Int] {
        switch self {
        case .linspace:
            return NoiseSchedule.linspace(0, Double(trainSteps - 1), steps).map { Int($0.rounded(.toNearestOrEven)) }
                .reversed()
        case .leading:
            let ratio = trainSteps / steps
            return (0..<steps).reversed().map { $0 * ratio + offset }
        case .trailing:
            return Self.trailing(steps: steps, trainSteps: trainSteps).map { $0 - 1 }
        }
    }

    /// Timesteps of the Euler family (float32 values, descending).
    public func floatTimesteps(steps: Int, trainSteps: Int, offset: Int) -> [Double] {
        switch self {
        case .linspace:
            return NoiseSchedule.linspace(0, Double(trainSteps - 1), steps).map { Double(Float($0)) }.reversed()
        case .leading, .trailing:
            return integerTimesteps(steps: steps, trainSteps: trainSteps, offset: offset).map(Double.init)
        }
    }

    /// Timesteps of DPM-Solver (diffusers' `DPMSolverMultistepScheduler.set_timesteps`), descending: linspace
    /// over steps + 1 points without the last, leading with ratio N / (steps + 1), or trailing.
    public func dpmSolverTimesteps(steps: Int, trainSteps: Int, offset: Int) -> [Int] {
        switch self {
        case .linspace:
            return NoiseSchedule.linspace(0, Double(trainSteps - 1), steps + 1).map { Int($0.rounded(.toNearestOrEven)) }
                .reversed().dropLast()
        case .leading:
            let ratio = trainSteps / (steps + 1)
            return (1...steps).reversed().map { $0 * ratio + offset }
        case .trailing:
            return Self.trailing(steps: steps, trainSteps: trainSteps).map { $0 - 1 }
        }
    }

    /// LCM's schedule (`LCMScheduler.set_timesteps`): the distillation timesteps k·i − 1 (i = 1 … original steps,
    /// skipping step k = N / original steps), reversed, then `steps` of them at indices ⌊linspace(0, count, steps)⌋.
    public static func lcm(steps: Int, trainSteps: Int, originalSteps: Int) throws -> [Int] {
        guard originalSteps >= 1, originalSteps <= trainSteps else {
            throw SchedulerError.invalidConfig("original_inference_steps must be in 1...\(trainSteps), got \(originalSteps)")
        }
        guard steps <= originalSteps else {
            throw SchedulerError.invalidStep("lcm: steps \(steps) cannot exceed original_inference_steps \(originalSteps)")
        }
        // k = self.config.num_train_timesteps // original_steps
        // lcm_origin_timesteps = np.asarray(list(range(1, int(original_steps * strength) + 1))) * k - 1
        let k = trainSteps / originalSteps
        let origin = (1...originalSteps).reversed().map { $0 * k - 1 }
        // inference_indices = np.floor(np.linspace(0, len(lcm_origin_timesteps), num=num_inference_steps, endpoint=False))
        let stride = Double(origin.count) / Double(steps)       // numpy: arange(num) * step
        return (0..<steps).map { i in origin[Int((Double(i) * stride).rounded(.down))] }
    }

    /// `np.round(np.arange(N, 0, -N / steps))`.
    static func trailing(steps: Int, trainSteps: Int) -> [Int] {
        let ratio = Double(trainSteps) / Double(steps)
        var out: [Int] = []
        var k = 0
        while true {
            let v = Double(trainSteps) - Double(k) * ratio
            if v <= 0 { break }
            out.append(Int(v.rounded(.toNearestOrEven)))
            k += 1
        }
        return out
    }
}

/// Sigma-space helpers shared by the k-diffusion style samplers.
public enum SigmaSpacing {
    /// σ at (possibly fractional) timesteps by linear interpolation of the training sigmas (`np.interp`).
    public static func interpolate(_ trainSigmas: [Float], at timesteps: [Double]) -> [Double] {
        timesteps.map { t in
            let last = trainSigmas.count - 1
            if t <= 0 { return Double(trainSigmas[0]) }
            if t >= Double(last) { return Double(trainSigmas[last]) }
            let i = Int(t.rounded(.down))
            let w = t - Double(i)
            let a = Double(trainSigmas[i]), b = Double(trainSigmas[i + 1])
            return a + (b - a) * w
        }
    }

    /// LCM's selection from its distillation schedule, Karras et al. σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, ρ = 7.
    public static func karras(sigmaMin: Double, sigmaMax: Double, steps: Int) -> [Double] {
        let rho = 7.0
        let lo = pow(sigmaMin, 1 / rho), hi = pow(sigmaMax, 1 / rho)
        return NoiseSchedule.linspace(0, 1, steps).map { pow(hi + $0 * (lo - hi), rho) }
    }

    /// The fractional timestep of a σ: interpolation in log σ between neighbouring training sigmas.
    public static func timestep(forSigma sigma: Double, logSigmas: [Double]) -> Double {
        let logSigma = log(max(sigma, 1e-10))
        // low = last index whose log σ is ≤ log σ (clipped so that low + 1 exists)
        var low = 0
        for (i, l) in logSigmas.enumerated() where logSigma - l >= 0 { low = i }
        low = min(low, logSigmas.count - 2)
        let lo = logSigmas[low], hi = logSigmas[low + 1]
        let w = min(max((lo - logSigma) / (lo - hi), 0), 1)
        return (1 - w) * Double(low) + w * Double(low + 1)
    }
}
