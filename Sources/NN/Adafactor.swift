// Adafactor (Shazeer & Stern, 2018) as transformers' `optimization.Adafactor` defines it. For a parameter with
// t updates done (its own count) and gradient g:
//
//     ρ = relative step ? min(warm-up init ? 1e-6·t : 1e-2, 1/√t) : the scheduled rate
//     lr = ρ · (scale parameter ? max(ε2, RMS(p)) : 1)                 (RMS of p before the update)
//     β2t = 1 − t^decay_rate;   u = g² + ε1
//     factored (≥ 2 dimensions [..., R, C]): r ← β2t·r + (1 − β2t)·mean_C(u);  c ← β2t·c + (1 − β2t)·mean_R(u)
//                 u = g / √(r / mean_R(r)) / √c     (the rank-1 estimate of the second moment)
//     otherwise:  v ← β2t·v + (1 − β2t)·u;  u = g / √v
//     u ← u / max(1, RMS(u)/clip_threshold) · lr
//     with β1: m ← β1·m + (1 − β1)·u;  u = m
//     p ← p − λ·lr·p − u
//
// kohya's trainer runs it with relative_step = scale_parameter = true unless told otherwise; then the
// scheduled rate is not used (ρ above replaces it). Float32 tensors in transformers' order of operations; a
// parameter without a gradient is left alone.
import Autograd
import Foundation
import TensorCore

/// Adafactor's options, transformers' defaults.
public struct AdafactorSettings: Codable, Equatable, Sendable {
    public var relativeStep = true
    public var scaleParameter = true
    public var warmupInit = false
    /// nil: no first moment.
    public var beta1: Double?
    public var weightDecay: Double = 0
    /// Regularisers of the squared gradient and of the parameter scale.
    public var eps1: Double = 1e-30
    public var eps2: Double = 1e-3
    public var clipThreshold: Double = 1
    public var decayRate: Double = -0.8

    public init() {}

    /// Checks what transformers checks.
    public func validate() throws {
        guard !warmupInit || relativeStep else {
            throw OptimizerError.invalidSetting("Adafactor's warmup_init=True needs relative_step=True")
        }
        guard clipThreshold > 0 else { throw OptimizerError.invalidSetting("Adafactor's clip_threshold must be positive") }
        if let b = beta1, !(0..<1).contains(b) { throw OptimizerError.invalidSetting("Adafactor's beta1 must be in [0, 1), got \(b)") }
    }
}

public final class Adafactor: Optimizer {
    public let settings: AdafactorSettings
    public let groups: [ParameterGroup]
    /// Updates applied.
    public private(set) var step = 0
    /// Per parameter: its update count and its state (created at its first gradient, as transformers).
    private var counts: [[Int]]
    private var m: [[Tensor?]], row: [[Tensor?]], column: [[Tensor?]], v: [[Tensor?]]

    public init(groups: [ParameterGroup], settings: AdafactorSettings = AdafactorSettings()) throws {
        try settings.validate()
        self.groups = groups
        self.settings = settings
        counts = groups.map { [Int](repeating: 0, count: $0.parameters.count) }
        let none = groups.map { [Tensor?](repeating: nil, count: $0.parameters.count) }
        (m, row, column, v) = (none, none, none, none)
    }

    /// [B, R, C] of a factored parameter (B: the product of the leading dimensions), nil for one dimension.
    private static func factors(_ shape: [Int]) -> (b: Int, r: Int, c: Int)? {
        guard shape.count >= 2 else { return nil }
        return (shape.dropLast(2).reduce(1, *), shape[shape.count - 2], shape[shape.count - 1])
    }

    private static func rms(_ x: UnsafeBufferPointer<Float>) -> Double {
        var sum = 0.0
        for e in x { sum += Double(e) * Double(e) }
        return Double(Float(sum.squareRoot())) / Double(x.count).squareRoot()
    }

    /// The rate for a parameter's `t`-th update and its RMS (transformers' `_get_lr`).
    private func rate(t: Int, rms: Double, scheduled: Double) -> Double {
        let c = settings
        var relative = scheduled
        if c.relativeStep { relative = min(c.warmupInit ? 1e-6 * Double(t) : 1e-2, 1 / Double(t).squareRoot()) }
        return (c.scaleParameter ? max(c.eps2, rms) : 1) * relative
    }

    public func update(learningRate: Float) {
        let c = settings
        for (gi, group) in groups.enumerated() {
            for (pi, (_, p)) in group.parameters.enumerated() {
                guard let grad = p.grad else { continue }
                let count = p.value.count
                let shape = p.shape
                let factored = Self.factors(shape)
                if counts[gi][pi] == 0 {
                    if c.beta1 != nil { m[gi][pi] = Tensor(zeros: shape) }
                    if let f = factored {
                        row[gi][pi] = Tensor(zeros: Array(shape.dropLast()))
                        column[gi][pi] = Tensor(zeros: Array(shape.dropLast(2)) + [f.c])
                    } else {
                        v[gi][pi] = Tensor(zeros: shape)
                    }
                }
                counts[gi][pi] += 1
                let t = counts[gi][pi]
                let lr = rate(t: t, rms: p.value.withUnsafeBufferPointer(Self.rms),
                              scheduled: Double(learningRate) * Double(group.learningRateScale))
                let beta2t = 1 - pow(Double(t), c.decayRate)
                let keep = Float(beta2t), blend = Float(1 - beta2t), eps1 = Float(c.eps1)
                var u = [Float](repeating: 0, count: count)
                grad.withUnsafeBufferPointer { g in
                    if let f = factored {
                        row[gi][pi]!.withUnsafeMutableBufferPointer { r in
                            column[gi][pi]!.withUnsafeMutableBufferPointer { col in
                                for b in 0..<f.b {
                                    let base = b * f.r * f.c
                                    for i in 0..<f.r {          // mean over C of g² + ε1
                                        var sum: Float = 0
                                        for j in 0..<f.c { let x = g[base + i * f.c + j]; sum += x * x + eps1 }
                                        r[b * f.r + i] = r[b * f.r + i] * keep + blend * (sum / Float(f.c))
                                    }
                                    for j in 0..<f.c {          // mean over R
                                        var sum: Float = 0
                                        for i in 0..<f.r { let x = g[base + i * f.c + j]; sum += x * x + eps1 }
                                        col[b * f.c + j] = col[b * f.c + j] * keep + blend * (sum / Float(f.r))
                                    }
                                    var rowSum: Float = 0
                                    for i in 0..<f.r { rowSum += r[b * f.r + i] }
                                    let rowMean = rowSum / Float(f.r)
                                    for i in 0..<f.r {
                                        let rFactor = 1 / (r[b * f.r + i] / rowMean).squareRoot()
                                        for j in 0..<f.c {
                                            let k = base + i * f.c + j
                                            u[k] = rFactor * (1 / col[b * f.c + j].squareRoot()) * g[k]
                                        }
                                    }
                                }
                            }
                        }
                    } else {
                        v[gi][pi]!.withUnsafeMutableBufferPointer { vv in
                            for k in 0..<count {
                                vv[k] = vv[k] * keep + blend * (g[k] * g[k] + eps1)
                                u[k] = 1 / vv[k].squareRoot() * g[k]
                            }
                        }
                    }
                }
                let clip = Float(max(u.withUnsafeBufferPointer(Self.rms) / c.clipThreshold, 1))
                let lrF = Float(lr)
                for k in 0..<count { u[k] = u[k] / clip * lrF }
                if let beta1 = c.beta1 {
                    let (b1, rest) = (Float(beta1), Float(1 - beta1))
                    m[gi][pi]!.withUnsafeMutableBufferPointer { mm in
                        for k in 0..<count {
                            mm[k] = mm[k] * b1 + rest * u[k]
                            u[k] = mm[k]
                        }
                    }
                }
                let decay = Float(-c.weightDecay * lr)
                p.value.withUnsafeMutableBufferPointer { w in
                    for k in 0..<count {
                        if c.weightDecay != 0 { w[k] += w[k] * decay }
                        w[k] -= u[k]
                    }
                }
            }
        }
        step += 1
    }

    /// With relative steps, ρ of the last update (before the parameter scale); otherwise the scheduled rate.
    public func effectiveLearningRate(_ learningRate: Float) -> Float {
        guard settings.relativeStep else { return learningRate }
        let t = Double(max(step, 1))
        return Float(min(settings.warmupInit ? 1e-6 * t : 1e-2, 1 / t.squareRoot()))
    }

    /// Tensors `adafactor.{exp_avg,exp_avg_sq_row,exp_avg_sq_col,exp_avg_sq}.<name>` and scalars
    /// `adafactor.step.<name>` of the parameters that have had a gradient.
    public func savedState() -> OptimizerState {
        var tensors: [String: Tensor] = [:], scalars: [String: Double] = [:]
        for (gi, group) in groups.enumerated() {
            for (pi, (name, _)) in group.parameters.enumerated() where counts[gi][pi] > 0 {
                scalars["adafactor.step." + name] = Double(counts[gi][pi])
                if let t = m[gi][pi] { tensors["adafactor.exp_avg." + name] = t }
                if let t = row[gi][pi] { tensors["adafactor.exp_avg_sq_row." + name] = t }
                if let t = column[gi][pi] { tensors["adafactor.exp_avg_sq_col." + name] = t }
                if let t = v[gi][pi] { tensors["adafactor.exp_avg_sq." + name] = t }
            }
        }
        return OptimizerState(tensors: tensors, scalars: scalars, step: step)
    }

    public func restore(_ state: OptimizerState) throws {
        var (newCounts, newM, newRow, newColumn, newV) = (counts, m, row, column, v)
        for (gi, group) in groups.enumerated() {
            for (pi, (name, p)) in group.parameters.enumerated() {
                let shape = p.shape
                guard let n = state.scalars["adafactor.step." + name] else {
                    (newCounts[gi][pi], newM[gi][pi], newRow[gi][pi], newColumn[gi][pi], newV[gi][pi]) = (0, nil, nil, nil, nil)
                    continue
                }
                newCounts[gi][pi] = Int(n)
                newM[gi][pi] = settings.beta1 != nil ? try savedTensor(state.tensors, "adafactor.exp_avg." + name, shape: shape) : nil
                if let f = Self.factors(shape) {
                    newRow[gi][pi] = try savedTensor(state.tensors, "adafactor.exp_avg_sq_row." + name, shape: Array(shape.dropLast()))
                    newColumn[gi][pi] = try savedTensor(state.tensors, "adafactor.exp_avg_sq_col." + name,
                                                        shape: Array(shape.dropLast(2)) + [f.c])
                } else {
                    newV[gi][pi] = try savedTensor(state.tensors, "adafactor.exp_avg_sq." + name, shape: shape)
                }
            }
        }
        if state.step > 0, newCounts.allSatisfy({ $0.allSatisfy { $0 == 0 } }) {
            throw OptimizerError.stateMismatch(key: "adafactor.*", reason: "no Adafactor state for \(state.step) steps")
        }
        (counts, m, row, column, v) = (newCounts, newM, newRow, newColumn, newV)
        step = state.step
    }
}
