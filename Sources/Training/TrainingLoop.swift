// The optimisation loop shared by LoRA training (`train-style`) and base training (`train-base`):
// micro-batch losses from the task, gradient accumulation, grad-norm clipping, an optimiser (AdamW, Prodigy or
// Adafactor) with a learning-rate schedule, atomic checkpoints, stop requests between steps, NaN/Inf detection, previews and progress.
//
// Every random draw of a run comes from one `PhiloxRandom` that the checkpoint saves, and the trained
// parameters and optimiser moments are saved exactly, so a resumed run continues bit for bit.
import Autograd
import Foundation
import NN
import TensorCore

/// Loop settings (defaults: diffusers' DreamBooth LoRA script).
public struct LoopSettings: Codable, Equatable, Sendable {
    public var steps: Int
    public var gradientAccumulation: Int = 1
    public var maxGradNorm: Float = 1
    public var learningRate: Float = 1e-4
    public var warmupSteps: Int = 0
    public var decay: LearningRateDecay = .constant
    /// Share of the peak rate the cosine decay ends at (nil: 0, diffusers' `cosine`).
    public var cosineFloor: Float?
    public var adamW = AdamWSettings()
    /// Another optimiser than AdamW (nil: AdamW with `adamW`).
    public var optimizer: OptimizerChoice?
    /// Hard restarts of `cosine_with_restarts` (nil: 1) and the power of `polynomial` (nil: 1).
    public var lrCycles: Int?
    public var lrPower: Double?
    /// Write a checkpoint every this many steps (0: only at the end and on a stop request).
    public var saveEvery: Int = 100
    /// Call the task's preview every this many steps (0: never).
    public var sampleEvery: Int = 0
    /// Measure the validation loss every this many steps (nil: 20 times over the run), when the task has one.
    public var validateEvery: Int?
    /// Keep an exponential moving average of the trained weights with this decay (`WeightAverage`; nil: none).
    public var emaDecay: Float?

    public init(steps: Int) { self.steps = steps }

    public var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: learningRate, warmupSteps: warmupSteps, decay: decay, totalSteps: steps,
                             floor: cosineFloor ?? 0, cycles: lrCycles ?? 1, power: lrPower ?? 1)
    }

    func validate() throws {
        guard steps >= 1 else { throw TrainingError.invalidSettings("--steps must be ≥ 1, got \(steps)") }
        guard gradientAccumulation >= 1 else { throw TrainingError.invalidSettings("gradient accumulation must be ≥ 1") }
        guard learningRate > 0, learningRate.isFinite else { throw TrainingError.invalidSettings("--lr must be positive") }
        guard saveEvery >= 0, sampleEvery >= 0, warmupSteps >= 0 else {
            throw TrainingError.invalidSettings("--save-every, --sample-every and --warmup must be ≥ 0")
        }
        try schedule.validate()
    }
}

/// What the loop reports after each update.
public struct StepReport: Sendable {
    public var step: Int
    public var total: Int
    public var loss: Float
    /// Exponential moving average of the loss (0.9 decay, bias-corrected).
    public var lossEMA: Float
    public var learningRate: Float
    /// Seconds per update over this session.
    public var secondsPerStep: Double
    public var eta: Double
}

public enum TrainingEvent {
    case step(StepReport)
    case checkpoint(path: String, step: Int)
    case preview(step: Int)
    case validation(ValidationLoss)
}

public enum LoopOutcome: Equatable, Sendable {
    case finished
    /// A stop was requested; a checkpoint for `step` was written.
    case interrupted(step: Int)
}

public final class TrainingLoop {
    public let settings: LoopSettings
    public let optimizer: any Optimizer
    public let runDirectory: URL
    /// The run configuration stored in every checkpoint (JSON).
    public let configuration: String
    public private(set) var state: LoopState
    /// One micro-batch's loss (a scalar), drawing all randomness from the given stream.
    public var microBatchLoss: (inout PhiloxRandom) throws -> Variable
    /// Writes previews for a step (validation grids).
    public var preview: ((Int) throws -> Void)?
    /// The loss on held-out images at fixed noise and timesteps (nil: no validation); measured before the first
    /// update, every `validateEvery` steps and at the end.
    public var validationLoss: (() throws -> Float)?
    /// Checked between updates; true → checkpoint and return `.interrupted`.
    public var shouldStop: () -> Bool = { false }
    public var onEvent: (TrainingEvent) -> Void = { _ in }
    /// Runs after the micro-batches' backward passes, before clipping: adds gradients of a loss term computed
    /// outside the graph (AdaLoRA's orthogonal regularisation) and returns that term's value.
    public var afterBackward: (() throws -> Float)?
    /// Runs after each optimiser update with the 0-based index of that step, gradients still present
    /// (AdaLoRA's rank allocator).
    public var afterUpdate: ((Int) throws -> Void)?
    /// Metadata written into every checkpoint besides the loop's own (e.g. train-base's run description).
    public var checkpointMetadata: () -> [String: String] = { [:] }
    /// The moving average of the trained weights (`settings.emaDecay`), saved in checkpoints as `ema.<key>`.
    public let average: WeightAverage?

    public var checkpointPath: String { runDirectory.appendingPathComponent(TrainingCheckpoint.fileName).path }
    private var parameters: [(String, Variable)] { optimizer.groups.flatMap(\.parameters) }

    public init(groups: [ParameterGroup], settings: LoopSettings, runDirectory: URL, configuration: String, seed: UInt64,
                microBatchLoss: @escaping (inout PhiloxRandom) throws -> Variable) throws {
        try settings.validate()
        self.settings = settings
        do {
            switch settings.optimizer {
            case nil: optimizer = AdamW(groups: groups, settings: settings.adamW)
            case .prodigy(let s): optimizer = try Prodigy(groups: groups, settings: s)
            case .adafactor(let s): optimizer = try Adafactor(groups: groups, settings: s)
            }
        } catch let error as OptimizerError {
            throw TrainingError.invalidSettings(error.description)
        }
        self.runDirectory = runDirectory
        self.configuration = configuration
        self.microBatchLoss = microBatchLoss
        state = LoopState(step: 0, random: PhiloxRandom(seed: seed))
        average = try settings.emaDecay.map { try WeightAverage(decay: $0, parameters: groups.flatMap(\.parameters)) }
    }

    /// Runs `body` with the weight average in the trained parameters' places (without an average: as they are).
    public func withAveragedWeights<R>(_ body: () throws -> R) rethrows -> R {
        guard let average else { return try body() }
        return try average.swappedIn(parameters, body)
    }

    /// Continues from `checkpoint`: parameters, optimiser moments, RNG state, step and history.
    public func restore(_ checkpoint: TrainingCheckpoint) throws {
        for (key, p) in parameters {
            guard let t = checkpoint.tensors["param." + key] else {
                throw TrainingError.invalidCheckpoint("the checkpoint has no value for \(key): it belongs to another run setup")
            }
            guard t.shape == p.shape else {
                throw TrainingError.invalidCheckpoint("checkpoint value for \(key) has shape \(t.shape), expected \(p.shape)")
            }
        }
        try average?.restore(from: checkpoint.tensors, parameters: parameters)
        do {
            try optimizer.restore(OptimizerState(tensors: checkpoint.tensors, scalars: checkpoint.optimizerScalars,
                                                 step: checkpoint.optimizerStep))
        } catch let error as OptimizerError {
            throw TrainingError.invalidCheckpoint(error.description)
        }
        for (key, p) in parameters { p.value = checkpoint.tensors["param." + key]! }
        state = checkpoint.state
    }

    /// Trains until `settings.steps` updates are done or a stop is requested.
    public func run() throws -> LoopOutcome {
        try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        let schedule = settings.schedule
        let start = Date(), startStep = state.step, previousElapsed = state.elapsed
        var ema = emaOf(state.lossHistory)
        var wroteCheckpoint = FileManager.default.fileExists(atPath: checkpointPath)
        if validationLoss != nil, state.validationLosses == nil {
            state.validationLosses = []
            try validate()
        }
        while state.step < settings.steps {
            if shouldStop() {
                try saveCheckpoint(elapsed: previousElapsed + Date().timeIntervalSince(start))
                return .interrupted(step: state.step)
            }
            let lr = schedule.rate(at: state.step)
            let loss = try trainStep()
            guard loss.isFinite else {
                throw TrainingError.nonFiniteLoss(step: state.step + 1, checkpoint: wroteCheckpoint ? checkpointPath : nil)
            }
            ema = (ema.value * 0.9 + loss * 0.1, ema.weight * 0.9 + 0.1)

            let session = Date().timeIntervalSince(start)
            let perStep = session / Double(state.step - startStep)
            onEvent(.step(StepReport(step: state.step, total: settings.steps, loss: loss, lossEMA: ema.value / ema.weight,
                                     learningRate: optimizer.effectiveLearningRate(lr), secondsPerStep: perStep,
                                     eta: perStep * Double(settings.steps - state.step))))
            let every = settings.validateEvery ?? max(1, settings.steps / 20)
            if validationLoss != nil, state.step % every == 0 || state.step == settings.steps { try validate() }
            if settings.saveEvery > 0, state.step % settings.saveEvery == 0 || state.step == settings.steps {
                try saveCheckpoint(elapsed: previousElapsed + session)
                wroteCheckpoint = true
            } else if state.step == settings.steps {
                try saveCheckpoint(elapsed: previousElapsed + session)
            }
            if let preview, settings.sampleEvery > 0, state.step % settings.sampleEvery == 0 {
                try preview(state.step)
                onEvent(.preview(step: state.step))
            }
        }
        return .finished
    }

    /// One optimiser update: the micro-batches' summed gradients, grad-norm clipping, the optimiser at the scheduled
    /// rate; the step count and loss history advance. Returns the mean loss; a NaN/Inf loss is returned
    /// before anything is updated (the step does not advance).
    public func trainStep() throws -> Float {
        let lr = settings.schedule.rate(at: state.step)
        var loss = try accumulateGradients()
        guard loss.isFinite else { return loss }
        if let afterBackward { loss += try afterBackward() }
        clipGradientNorm(parameters.map(\.1), maxNorm: settings.maxGradNorm)
        optimizer.update(learningRate: lr)
        try afterUpdate?(state.step)
        for (_, p) in parameters { p.zeroGrad() }
        state.step += 1
        average?.update(parameters, update: state.step)
        state.lossHistory.append(loss)
        return loss
    }

    /// Runs the micro-batches of one update, leaving the summed gradients of loss/accumulation on the
    /// parameters; returns the mean loss.
    private func accumulateGradients() throws -> Float {
        var total: Float = 0
        let n = settings.gradientAccumulation
        for _ in 0..<n {
            let loss = try microBatchLoss(&state.random)
            let value = loss.value.withUnsafeBufferPointer { $0[0] }
            total += value
            guard value.isFinite else { return value }
            try (n == 1 ? loss : scale(loss, by: 1 / Float(n))).backward()
        }
        return total / Float(n)
    }

    /// Measures and records the validation loss of the current step.
    private func validate() throws {
        guard let validationLoss else { return }
        let point = ValidationLoss(step: state.step, loss: try withNoGrad { try validationLoss() })
        state.validationLosses = (state.validationLosses ?? []) + [point]
        onEvent(.validation(point))
    }

    /// Writes the checkpoint for the current step atomically.
    public func saveCheckpoint(elapsed: Double) throws {
        state.elapsed = elapsed
        try checkpoint(extra: checkpointMetadata()).write(to: checkpointPath)
        onEvent(.checkpoint(path: checkpointPath, step: state.step))
    }

    /// The checkpoint of the current step: parameters, moments, loop state, configuration and `extra` metadata.
    public func checkpoint(extra: [String: String] = [:]) -> TrainingCheckpoint {
        let saved = optimizer.savedState()
        var tensors = saved.tensors
        for (key, p) in parameters { tensors["param." + key] = p.value }
        for (key, a) in average?.averages ?? [:] { tensors[WeightAverage.prefix + key] = a }
        return TrainingCheckpoint(state: state, configuration: configuration, tensors: tensors,
                                  optimizerStep: saved.step, optimizerScalars: saved.scalars, extra: extra)
    }

    private func emaOf(_ history: [Float]) -> (value: Float, weight: Float) {
        history.reduce((0, 0)) { ($0.0 * 0.9 + $1 * 0.1, $0.1 * 0.9 + 0.1) }
    }
}
