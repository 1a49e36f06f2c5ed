// Prodigy (Mishchenko & Defazio, 2023): Adam whose step size d is estimated from the run itself, as the
// `prodigyopt` package's `Prodigy` (version 1.1.2, slice_p = 1, no FSDP) defines it. With base rate lr (kohya's
// users run lr = 1 and let d find the scale), k updates done and β3 = √β2 unless given:
//
//     dlr = d · lr · (bias correction: √(1 − β2^(k+1)) / (1 − β1^(k+1)), else 1)
//     numerator ← β3·numerator + Σ_p (d/d0)·dlr·⟨g, p0 − p⟩          (p0: the parameter's first value)
//     m ← β1·m + d(1 − β1)·g;   v ← β2·v + d²(1 − β2)·g²
//     s ← β3·s + (d/d0)·(safeguard warm-up ? d : dlr)·g;            denominator = Σ_p ‖s‖₁
//     d̂ = d_coef · numerator / denominator;  d ← min(max(d, d̂), d·growth)   (max(d, d̂) only while d = d0; then
//     d never exceeds the largest d̂ seen)
//     p ← p − dlr·λ·p (decoupled decay; coupled: g ← g + λp first);   p ← p − dlr · m / (√v + d·ε)
//
// The scalars (d, its maximum, the numerator) are Float64 as Python floats; the tensors Float32 in torch's order
// of operations. A parameter without a gradient is left alone. Groups share one rate: a group's scale is 1 or 0
// (prodigyopt refuses others), and a group at 0 keeps its moments but still takes the decay and the step of its
// (zero) first moment.
import Autograd
import Foundation
import TensorCore

/// Prodigy's options, prodigyopt's defaults.
public struct ProdigySettings: Codable, Equatable, Sendable {
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    /// nil: √β2.
    public var beta3: Double?
    public var eps: Double = 1e-8
    public var weightDecay: Double = 0
    /// AdamW-style decay (true) or decay added to the gradient (false).
    public var decouple = true
    public var useBiasCorrection = false
    public var safeguardWarmup = false
    public var d0: Double = 1e-6
    public var dCoef: Double = 1
    /// Largest factor d may grow by in one step (nil: unbounded).
    public var growthRate: Double?

    public init() {}

    /// Checks the ranges prodigyopt checks.
    public func validate() throws {
        guard d0 > 0 else { throw OptimizerError.invalidSetting("Prodigy's d0 must be positive, got \(d0)") }
        guard eps > 0 else { throw OptimizerError.invalidSetting("Prodigy's eps must be positive, got \(eps)") }
        guard (0..<1).contains(beta1), (0..<1).contains(beta2) else {
            throw OptimizerError.invalidSetting("Prodigy's betas must be in [0, 1), got (\(beta1), \(beta2))")
        }
        if let b3 = beta3, !(0...1).contains(b3) { throw OptimizerError.invalidSetting("Prodigy's beta3 must be in [0, 1], got \(b3)") }
        if let g = growthRate, !(g > 0) { throw OptimizerError.invalidSetting("Prodigy's growth_rate must be positive, got \(g)") }
    }
}

public final class Prodigy: Optimizer {
    public let settings: ProdigySettings
    public let groups: [ParameterGroup]
    /// Updates applied (k).
    public private(set) var step = 0
    /// The current step-size estimate.
    public private(set) var d: Double
    private var dMax: Double
    private var dNumerator: Double = 0
    /// Per parameter: first value, s, first and second moments (created at its first gradient, as prodigyopt).
    private var p0: [[Tensor?]], s: [[Tensor?]], m: [[Tensor?]], v: [[Tensor?]]

    /// - Parameter groups: every group's `learningRateScale` must be 1 or 0.
    public init(groups: [ParameterGroup], settings: ProdigySettings = ProdigySettings()) throws {
        try settings.validate()
        for g in groups where g.learningRateScale != 1 && g.learningRateScale != 0 {
            throw OptimizerError.invalidSetting("Prodigy takes one learning rate for all parameters (a group may be at 0), "
                + "got a group at \(g.learningRateScale) × the rate")
        }
        self.groups = groups
        self.settings = settings
        d = settings.d0
        dMax = settings.d0
        let none = groups.map { [Tensor?](repeating: nil, count: $0.parameters.count) }
        (p0, s, m, v) = (none, none, none, none)
    }

    public func update(learningRate: Float) {
        let c = settings
        let beta3 = c.beta3 ?? c.beta2.squareRoot()
        let lr = Double(learningRate) * Double(groups.map(\.learningRateScale).max() ?? 0)
        let biasCorrection = c.useBiasCorrection
            ? (1 - pow(c.beta2, Double(step + 1))).squareRoot() / (1 - pow(c.beta1, Double(step + 1))) : 1
        let dlr = d * lr * biasCorrection
        var numerator = dNumerator * beta3, denominator = 0.0
        let (b1, b2, b3) = (Float(c.beta1), Float(c.beta2), Float(beta3))
        let mScale = Float(d * (1 - c.beta1)), vScale = Float(d * d * (1 - c.beta2))
        let sScale = Float(d / c.d0 * (c.safeguardWarmup ? d : dlr))
        var grads: [[Tensor?]] = groups.map { $0.parameters.map { $0.1.grad } }

        for (gi, group) in groups.enumerated() {
            let groupRate = lr * Double(group.learningRateScale)
            for (pi, (_, p)) in group.parameters.enumerated() {
                guard var grad = grads[gi][pi] else { continue }
                if c.weightDecay != 0, !c.decouple {
                    let decay = Float(c.weightDecay)
                    grad = Tensor(shape: grad.shape) { out in
                        grad.withUnsafeBufferPointer { g in
                            p.value.withUnsafeBufferPointer { w in for j in 0..<out.count { out[j] = g[j] + decay * w[j] } }
                        }
                    }
                    grads[gi][pi] = grad
                }
                if p0[gi][pi] == nil {
                    p0[gi][pi] = p.value
                    s[gi][pi] = Tensor(zeros: p.shape)
                    if c.beta1 > 0 { m[gi][pi] = Tensor(zeros: p.shape) }
                    v[gi][pi] = Tensor(zeros: p.shape)
                }
                guard groupRate > 0 else { continue }
                var dot = 0.0, sAbs = 0.0
                grad.withUnsafeBufferPointer { g in
                    p.value.withUnsafeBufferPointer { w in
                        p0[gi][pi]!.withUnsafeBufferPointer { w0 in
                            for j in 0..<g.count { dot += Double(g[j]) * Double(w0[j] - w[j]) }
                        }
                    }
                    if c.beta1 > 0 {
                        m[gi][pi]!.withUnsafeMutableBufferPointer { mm in
                            for j in 0..<g.count { mm[j] = mm[j] * b1 + mScale * g[j] }
                        }
                    }
                    v[gi][pi]!.withUnsafeMutableBufferPointer { vv in
                        for j in 0..<g.count { vv[j] = vv[j] * b2 + vScale * (g[j] * g[j]) }
                    }
                    s[gi][pi]!.withUnsafeMutableBufferPointer { ss in
                        for j in 0..<g.count {
                            ss[j] = ss[j] * b3 + sScale * g[j]
                            sAbs += Double(abs(ss[j]))
                        }
                    }
                }
                numerator += d / c.d0 * dlr * Double(Float(dot))
                denominator += Double(Float(sAbs))
            }
        }
        // No progress possible (no gradient, or all zero): prodigyopt returns here, the step not counted.
        guard denominator != 0 else { return }
        if lr > 0 {
            let dHat = c.dCoef * numerator / denominator
            if d == c.d0 { d = max(d, dHat) }
            dMax = max(dMax, dHat)
            d = min(dMax, d * (c.growthRate ?? .infinity))
        }
        dNumerator = numerator
        let decayFactor = Float(-c.weightDecay * dlr), epsD = Float(d * c.eps), stepScale = Float(-dlr)
        let rawScale = Float(-dlr * d)
        for (gi, group) in groups.enumerated() {
            for (pi, (_, p)) in group.parameters.enumerated() {
                guard let grad = grads[gi][pi] else { continue }
                v[gi][pi]!.withUnsafeBufferPointer { vv in
                    p.value.withUnsafeMutableBufferPointer { w in
                        if c.weightDecay != 0, c.decouple { for j in 0..<w.count { w[j] += w[j] * decayFactor } }
                        if c.beta1 > 0 {
                            m[gi][pi]!.withUnsafeBufferPointer { mm in
                                for j in 0..<w.count { w[j] += stepScale * (mm[j] / (vv[j].squareRoot() + epsD)) }
                            }
                        } else {
                            grad.withUnsafeBufferPointer { g in
                                for j in 0..<w.count { w[j] += rawScale * (g[j] / (vv[j].squareRoot() + epsD)) }
                            }
                        }
                    }
                }
            }
        }
        step += 1
    }

    /// d · lr.
    public func effectiveLearningRate(_ learningRate: Float) -> Float { Float(d * Double(learningRate)) }

    /// Tensors `prodigy.{p0,s,exp_avg,exp_avg_sq}.<name>` of the parameters that have had a gradient; scalars
    /// `prodigy.d`, `prodigy.d_max`, `prodigy.d_numerator`.
    public func savedState() -> OptimizerState {
        var tensors: [String: Tensor] = [:]
        for (gi, group) in groups.enumerated() {
            for (pi, (name, _)) in group.parameters.enumerated() where p0[gi][pi] != nil {
                tensors["prodigy.p0." + name] = p0[gi][pi]
                tensors["prodigy.s." + name] = s[gi][pi]
                if let mm = m[gi][pi] { tensors["prodigy.exp_avg." + name] = mm }
                tensors["prodigy.exp_avg_sq." + name] = v[gi][pi]
            }
        }
        return OptimizerState(tensors: tensors, scalars: ["prodigy.d": d, "prodigy.d_max": dMax, "prodigy.d_numerator": dNumerator],
                              step: step)
    }

    public func restore(_ state: OptimizerState) throws {
        let newD = try savedScalar(state.scalars, "prodigy.d"), newMax = try savedScalar(state.scalars, "prodigy.d_max")
        let newNumerator = try savedScalar(state.scalars, "prodigy.d_numerator")
        var (newP0, newS, newM, newV) = (p0, s, m, v)
        for (gi, group) in groups.enumerated() {
            for (pi, (name, p)) in group.parameters.enumerated() {
                guard state.tensors["prodigy.p0." + name] != nil else {
                    (newP0[gi][pi], newS[gi][pi], newM[gi][pi], newV[gi][pi]) = (nil, nil, nil, nil)
                    continue
                }
                newP0[gi][pi] = try savedTensor(state.tensors, "prodigy.p0." + name, shape: p.shape)
                newS[gi][pi] = try savedTensor(state.tensors, "prodigy.s." + name, shape: p.shape)
                newM[gi][pi] = settings.beta1 > 0 ? try savedTensor(state.tensors, "prodigy.exp_avg." + name, shape: p.shape) : nil
                newV[gi][pi] = try savedTensor(state.tensors, "prodigy.exp_avg_sq." + name, shape: p.shape)
            }
        }
        if state.step > 0, newP0.allSatisfy({ $0.allSatisfy { $0 == nil } }) {
            throw OptimizerError.stateMismatch(key: "prodigy.*", reason: "no Prodigy state for \(state.step) steps")
        }
        (p0, s, m, v) = (newP0, newS, newM, newV)
        (d, dMax, dNumerator, step) = (newD, newMax, newNumerator, state.step)
    }
}
