// Parameterization: how a model output turns into the denoised estimate x₀ (and ε).
//
// Every rule here is linear in (sample, model output), so each returns the two coefficients
// (of the sample, of the model output); step rules combine them with their own coefficients.
//   VP space   (DDPM, DDIM, PNDM, DPM-Solver): x_t = √ᾱ·x₀ + √(1−ᾱ)·ε
//   σ space    (Euler, Euler a, Heun, LMS):    x = x₀ + σ·ε, the model sees x / √(σ²+1)

import Foundation

/// Coefficients (a, b) of an estimate a·sample + b·modelOutput.
public struct LinearEstimate: Equatable, Sendable {
    public var sample: Double
    public var model: Double
}

extension PredictionType {
    /// x₀ in VP space at cumulative alpha `alphaCumprod`.
    public func denoised(alphaCumprod a: Double) -> LinearEstimate {
        switch self {
        case .epsilon: return LinearEstimate(sample: 1 / a.squareRoot(), model: -((1 - a) / a).squareRoot())
        case .sample: return LinearEstimate(sample: 0, model: 1)
        case .vPrediction: return LinearEstimate(sample: a.squareRoot(), model: -(1 - a).squareRoot())
        }
    }

    /// ε in VP space at cumulative alpha `alphaCumprod`.
    public func epsilon(alphaCumprod a: Double) -> LinearEstimate {
        switch self {
        case .epsilon: return LinearEstimate(sample: 0, model: 1)
        case .sample: return LinearEstimate(sample: 1 / (1 - a).squareRoot(), model: -(a / (1 - a)).squareRoot())
        case .vPrediction: return LinearEstimate(sample: (1 - a).squareRoot(), model: a.squareRoot())
        }
    }

    /// x₀ in σ space (the sample is x₀ + σ·ε, unscaled).
    public func denoised(sigma s: Double) -> LinearEstimate {
        switch self {
        case .epsilon: return LinearEstimate(sample: 1, model: -s)
        case .sample: return LinearEstimate(sample: 0, model: 1)
        case .vPrediction: return LinearEstimate(sample: 1 / (s * s + 1), model: -s / (s * s + 1).squareRoot())
        }
    }
}
