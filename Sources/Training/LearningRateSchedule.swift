// Learning-rate schedules as diffusers' `get_scheduler`: linear warm-up from 0, then constant or a
// half-cosine decay to 0 (or to a floor, a share of the peak) over the remaining steps.
import Foundation

public enum LearningRateDecay: String, Codable, Sendable, CaseIterable {
    case constant
    case cosine
}

public struct LearningRateSchedule: Codable, Equatable, Sendable {
    public var peak: Float
    public var warmupSteps: Int
    public var decay: LearningRateDecay
    public var totalSteps: Int
    /// The cosine decay ends at floor · peak (0: diffusers' `cosine`; train-base uses 0.1).
    public var floor: Float

    public init(peak: Float, warmupSteps: Int = 0, decay: LearningRateDecay = .constant, totalSteps: Int, floor: Float = 0) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.decay = decay
        self.totalSteps = totalSteps
        self.floor = floor
    }

    /// The rate for optimiser update `step` (0-based, as torch's LambdaLR sees it).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step) / Float(max(1, warmupSteps)) }
        switch decay {
        case .constant:
            return peak
        case .cosine:
            let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
            let cosine = max(0, 0.5 * (1 + cos(Double.pi * min(progress, 1))))
            guard floor != 0 else { return peak * Float(cosine) }
            return peak * Float(Double(floor) + (1 - Double(floor)) * cosine)
        }
    }
}
