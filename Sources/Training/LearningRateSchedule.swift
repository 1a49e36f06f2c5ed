// Learning-rate schedules as diffusers' `get_scheduler` (diffusers/optimization.py): linear warm-up from 0 over
// `warmupSteps`, then
//
//     constant               peak (unlike diffusers' `constant`, the warm-up is kept: this project's `constant`
//                            has always warmed up when --warmup is given, which is diffusers' constant_with_warmup)
//     constant_with_warmup   peak
//     linear                 peak · (total − step) / (total − warmup), down to 0
//     cosine                 peak · ½(1 + cos(π·progress)) (or down to a floor, a share of the peak: train-base)
//     cosine_with_restarts   peak · ½(1 + cos(π·((cycles·progress) mod 1))), 0 from the last step on
//     polynomial             (peak − 1e-7)·(1 − progress)^power + 1e-7, 1e-7 after the last step
//
// where progress = (step − warmup) / (total − warmup).
import Foundation

public enum LearningRateDecay: String, Codable, Sendable, CaseIterable {
    case constant
    case constantWithWarmup = "constant_with_warmup"
    case linear
    case cosine
    case cosineWithRestarts = "cosine_with_restarts"
    case polynomial
}

public struct LearningRateSchedule: Codable, Equatable, Sendable {
    public var peak: Float
    public var warmupSteps: Int
    public var decay: LearningRateDecay
    public var totalSteps: Int
    /// The cosine decay ends at floor · peak (0: diffusers' `cosine`; train-base uses 0.1).
    public var floor: Float
    /// Hard restarts of `cosine_with_restarts` (diffusers' num_cycles).
    public var cycles: Int
    /// Exponent of `polynomial`.
    public var power: Double
    /// Where `polynomial` ends (diffusers' lr_end).
    public static let polynomialEnd = 1e-7

    public init(peak: Float, warmupSteps: Int = 0, decay: LearningRateDecay = .constant, totalSteps: Int, floor: Float = 0,
                cycles: Int = 1, power: Double = 1) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.decay = decay
        self.totalSteps = totalSteps
        self.floor = floor
        self.cycles = cycles
        self.power = power
    }

    /// The ranges diffusers checks (polynomial: a peak above its end rate).
    public func validate() throws {
        if decay == .polynomial, !(Double(peak) > Self.polynomialEnd) {
            throw TrainingError.invalidSettings("--lr-schedule polynomial decays to 1e-7: --lr must be larger, got \(peak)")
        }
        guard cycles >= 1 else { throw TrainingError.invalidSettings("--lr-cycles must be ≥ 1, got \(cycles)") }
        guard power > 0, power.isFinite else { throw TrainingError.invalidSettings("--lr-power must be positive, got \(power)") }
    }

    /// The rate for optimiser update `step` (0-based, as torch's LambdaLR sees it).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step) / Float(max(1, warmupSteps)) }
        let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
        switch decay {
        case .constant, .constantWithWarmup:
            return peak
        case .linear:
            return peak * Float(max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps))))
        case .cosine:
            let cosine = max(0, 0.5 * (1 + cos(Double.pi * min(progress, 1))))
            guard floor != 0 else { return peak * Float(cosine) }
            return peak * Float(Double(floor) + (1 - Double(floor)) * cosine)
        case .cosineWithRestarts:
            guard progress < 1 else { return 0 }
            let phase = (Double(cycles) * progress).truncatingRemainder(dividingBy: 1)
            return peak * Float(max(0, 0.5 * (1 + cos(Double.pi * phase))))
        case .polynomial:
            let initial = Double(peak), end = Self.polynomialEnd
            guard step <= totalSteps else { return Float(end) }
            let remaining = 1 - Double(step - warmupSteps) / Double(totalSteps - warmupSteps)
            return Float((initial - end) * pow(remaining, power) + end)
        }
    }
}
