// An exponential moving average of the trained weights (diffusers' `EMAModel`, `--use_ema` of its training
// scripts): after the n-th optimiser update every average moves toward its weight,
//
//     a ← a − (1 − d_n)·(a − w),   d_n = min(decay, (1 + s)/(10 + s)),  s = n − 1   (d_1 = 0: a starts as w),
//
// so the average of a short run is not dominated by the weights it started from. Sampling from the average
// instead of the last weights smooths out the optimiser's step-to-step noise (on the embedded model it changed the
// judge's scores by a point or two either way: pipelines/toy/TRAINING.md, "Step 3"). The loop saves the averages in
// its checkpoints (`ema.<key>`), so a resumed run continues them bit for bit.
import Autograd
import Foundation
import NN
import TensorCore

public final class WeightAverage {
    /// The longest memory: at most this share of the average is kept per update.
    public let decay: Float
    /// The averages, by the loop's parameter key.
    public private(set) var averages: [String: Tensor]

    /// Averages starting at the parameters' current values (replaced by the first update's weights).
    public init(decay: Float, parameters: [(String, Variable)]) throws {
        guard decay >= 0, decay < 1 else {
            throw TrainingError.invalidSettings("--ema takes a decay in [0, 1), e.g. 0.999; got \(decay)")
        }
        self.decay = decay
        averages = Dictionary(uniqueKeysWithValues: parameters.map { ($0.0, $0.1.value) })
    }

    /// The decay applied at the `update`-th optimiser update (1-based).
    public func decay(atUpdate update: Int) -> Float {
        let s = update - 1
        guard s > 0 else { return 0 }
        return min(decay, Float(1 + s) / Float(10 + s))
    }

    /// Moves every average toward its parameter after the `update`-th optimiser update (1-based).
    func update(_ parameters: [(String, Variable)], update: Int) {
        let keep = decay(atUpdate: update)
        for (key, p) in parameters {
            guard var a = averages.removeValue(forKey: key) else { continue }
            if keep == 0 {
                a = p.value
            } else {
                let step = 1 - keep
                a.withUnsafeMutableBufferPointer { avg in
                    p.value.withUnsafeBufferPointer { w in
                        for i in 0..<avg.count { avg[i] -= step * (avg[i] - w[i]) }
                    }
                }
            }
            averages[key] = a
        }
    }

    /// Restores the averages saved in a checkpoint (`ema.<key>` for every parameter).
    func restore(from tensors: [String: Tensor], parameters: [(String, Variable)]) throws {
        var restored: [String: Tensor] = [:]
        for (key, p) in parameters {
            guard let t = tensors[Self.prefix + key] else {
                throw TrainingError.invalidCheckpoint("the checkpoint has no weight average for \(key): it was written without --ema")
            }
            guard t.shape == p.shape else {
                throw TrainingError.invalidCheckpoint("weight average for \(key) has shape \(t.shape), expected \(p.shape)")
            }
            restored[key] = t
        }
        averages = restored
    }

    /// Runs `body` with the averages in the parameters' places, then puts the trained weights back.
    public func swappedIn<R>(_ parameters: [(String, Variable)], _ body: () throws -> R) rethrows -> R {
        func swap() {
            for (key, p) in parameters {
                guard let a = averages[key] else { continue }
                averages[key] = p.value
                p.value = a
            }
        }
        swap()
        defer { swap() }
        return try body()
    }

    /// Key prefix of the averages in a training checkpoint.
    public static let prefix = "ema."
}
