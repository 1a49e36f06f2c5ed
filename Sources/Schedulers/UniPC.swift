// UniPC (Zhao et al. 2023): a unified predictor-corrector for diffusion ODEs, here with data prediction,
// the B(h) = e^h − 1 variant (bh2) and order 2. Each step first corrects the sample the previous predictor
// produced, using the model output just computed (UniC; no extra model evaluation), then predicts the next.
// This implementation matches: diffusers UniPCMultistepScheduler (0.42) with its defaults `solver_order` 2,
// `predict_x0` True, `solver_type` "bh2", `lower_order_final` True, no `disable_corrector`, no thresholding.
// Samples live in VP space: α_t = 1/√(σ²+1), σ_t = σ·α_t, λ = log α_t − log σ_t.

import Foundation
import TensorCore

struct UniPCSampler: Sampler {
    let prediction: PredictionType
    let lowerOrderFinal: Bool
    let integerTimesteps: [Int]
    let timesteps: [Double]
    let sigmas: [Float]
    var initNoiseSigma: Float { 1 }
    /// Converted model outputs (x₀ estimates) of the last two steps, newest last.
    private var history: [Tensor] = []
    /// The sample the last predictor started from, and that predictor's order.
    private var lastSample: Tensor?
    private var lastOrder = 1

    init(_ s: SamplerSetup) throws {
        prediction = s.prediction
        lowerOrderFinal = s.config.lowerOrderFinal ?? true
        (integerTimesteps, sigmas) = s.multistepSchedule(finalSigma: s.config.finalSigmasType ?? .zero,
                                                         roundCosineKarras: true)
        timesteps = integerTimesteps.map(Double.init)
    }

    private func lambda(_ i: Int) -> Double { DPMSolverMultistepSampler.vp(sigmas[i]).lambda }

    /// img2img start: diffusers' `UniPCMultistepScheduler.add_noise`, α_t·x + σ_t·n from the step's sigma.
    func addNoise(to sample: Tensor, noise: Tensor, step: Int) throws -> Tensor {
        try validateNoise(sample, noise, step)
        return DPMSolverMultistepSampler.addNoise(to: sample, noise: noise, sigma: sigmas[step])
    }

    mutating func step<N: NoiseSource>(modelOutput: Tensor, step i: Int, sample: Tensor, noise: inout N) throws -> Tensor {
        try validate(modelOutput, sample, i)
        // x0_pred from the parameterization at sigmas[step_index] (convert_model_output, predict_x0)
        let s = DPMSolverMultistepSampler.vp(sigmas[i])
        let c = prediction.denoised(alphaCumprod: s.alpha * s.alpha)
        let m = combine([(c.sample, sample), (c.model, modelOutput)])
        var x = sample
        if i > 0, let last = lastSample { x = corrected(last, to: i, modelOutput: m, order: lastOrder) }
        history = Array((history + [m]).suffix(2))
        // this_order = min(solver_order, len(timesteps) - step_index) with lower_order_final, then
        // min(this_order, lower_order_nums + 1) for the warm-up
        let order = min(lowerOrderFinal ? min(2, timesteps.count - i) : 2, history.count)
        (lastSample, lastOrder) = (x, order)
        return predicted(x, from: i, order: order)
    }

    /// UniP-bh2 from step i's sigma to step i+1's (multistep_uni_p_bh_update), with the newest outputs in `history`.
    private func predicted(_ x: Tensor, from i: Int, order: Int) -> Tensor {
        let s0 = DPMSolverMultistepSampler.vp(sigmas[i]), t = DPMSolverMultistepSampler.vp(sigmas[i + 1])
        let h = t.lambda - s0.lambda
        // hh = -h (predict_x0); h_phi_1 = torch.expm1(hh); B_h = torch.expm1(hh) (bh2)
        let hPhi1 = expm1(-h), bH = expm1(-h)
        let m0 = history[history.count - 1]
        // x_t_ = sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0
        var terms = [(t.sigma / s0.sigma, x), (-t.alpha * hPhi1, m0)]
        if order == 2 {
            // rk = (lambda_s1 - lambda_s0) / h; D1 = (m1 - m0) / rk; rhos_p = [0.5] for order 2
            // x_t = x_t_ - alpha_t * B_h * pred_res, pred_res = rhos_p · D1s
            let rk = (lambda(i - 1) - s0.lambda) / h
            let w = -t.alpha * bH * 0.5 / rk
            terms += [(w, history[history.count - 2]), (-w, m0)]
        }
        return combine(terms)
    }

    /// UniC-bh2 of the sample at step i (multistep_uni_c_bh_update): `last` is the previous predictor's input at
    /// step i−1, `modelOutput` the converted output at step i, `order` the previous predictor's order.
    private func corrected(_ last: Tensor, to i: Int, modelOutput mt: Tensor, order: Int) -> Tensor {
        let t = DPMSolverMultistepSampler.vp(sigmas[i]), s0 = DPMSolverMultistepSampler.vp(sigmas[i - 1])
        let h = t.lambda - s0.lambda
        let hh = -h
        let hPhi1 = expm1(hh), bH = expm1(hh)
        let m0 = history[history.count - 1]
        // x_t_ = sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0
        var terms = [(t.sigma / s0.sigma, last), (-t.alpha * hPhi1, m0)]
        // rhos_c: 0.5 for order 1, else torch.linalg.solve(R, b) with R = [[1, 1], [rk, 1]],
        // b_k = h_phi_k * k! / B_h, h_phi_1 = h_phi_1 / hh - 1, h_phi_{k+1} = h_phi_k / hh - 1 / (k+1)!
        var rhoLast = 0.5
        if order == 2 {
            let rk = (lambda(i - 2) - s0.lambda) / h
            let phi1 = hPhi1 / hh - 1, phi2 = phi1 / hh - 0.5
            let b1 = phi1 / bH, b2 = phi2 * 2 / bH
            let rho0 = (b1 - b2) / (1 - rk)
            rhoLast = b1 - rho0
            // corr_res = rhos_c[:-1] · D1s, D1 = (m1 - m0) / rk
            let w = -t.alpha * bH * rho0 / rk
            terms += [(w, history[history.count - 2]), (-w, m0)]
        }
        // x_t = x_t_ - alpha_t * B_h * (corr_res + rhos_c[-1] * (model_t - m0))
        let w = -t.alpha * bH * rhoLast
        terms += [(w, mt), (-w, m0)]
        return combine(terms)
    }
}

extension UniPCSampler: SigmaSampler {}
