// The denoising loss of one micro-batch (DDPM training, as diffusers' train_dreambooth_lora.py):
// t ~ U{0, …, T−1}, ε ~ N(0, I) (+ noise offset · N(0, 1) per image and channel),
// x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, loss = Σ_n w_n · mean((UNet(x_t, t, c)_n − target_n)²), target ε or v.
// The per-row weights w_n carry the prior-preservation split (instance rows 1/N_i, class rows λ/N_c) and,
// with `snrGamma`, the min-SNR-γ weight of each row's timestep. An `anchor` replaces the target of some rows
// by another prediction for the same x_t and t (prior preservation against the frozen base's own output).
import Autograd
import DiffusionModels
import Schedulers
import TensorCore

public struct DiffusionObjective {
    public let schedule: NoiseSchedule
    public let prediction: PredictionType
    /// Min-SNR-γ weighting (Hang et al. 2023); nil: plain MSE.
    public var snrGamma: Double?
    /// Offset-noise strength (0: off).
    public var noiseOffset: Float

    public init(schedule: NoiseSchedule, prediction: PredictionType, snrGamma: Double? = nil, noiseOffset: Float = 0) {
        self.schedule = schedule
        self.prediction = prediction
        self.snrGamma = snrGamma
        self.noiseOffset = noiseOffset
    }

    /// The weighted loss for clean samples x0 [N, H, W, C] (NHWC) under `conditioning` (N rows).
    /// `rowWeights` [N] sum to the number of groups (1 without prior preservation, 1 + λ with it).
    public func loss(unet: UNet2DConditionModel, x0: Tensor, conditioning: Conditioning, rowWeights: [Float],
                     anchor: TargetAnchor? = nil, random: inout PhiloxRandom) throws -> Variable {
        let n = x0.shape[0], channels = x0.shape[3]
        guard rowWeights.count == n, conditioning.count == n else {
            throw TrainingError.invalidSettings("loss: \(n) samples, \(rowWeights.count) weights, conditioning \(conditioning.context.shape)")
        }
        let T = UInt64(schedule.numTrainTimesteps)
        let timesteps = (0..<n).map { _ in Int(random.next() % T) }
        var noise = random.normal(shape: x0.shape)
        if noiseOffset != 0 {
            let offset = random.normal(shape: [n, 1, 1, channels])
            noise = try Elementwise.add(noise, Elementwise.scale(offset, by: noiseOffset))
        }
        return try loss(unet: unet, x0: x0, noise: noise, timesteps: timesteps, conditioning: conditioning, rowWeights: rowWeights,
                        anchor: anchor)
    }

    /// The weighted loss at given noise [N, H, W, C] and timesteps [N] (the draws of `loss(…random:)`).
    public func loss(unet: UNet2DConditionModel, x0: Tensor, noise: Tensor, timesteps: [Int], conditioning: Conditioning,
                     rowWeights: [Float], anchor: TargetAnchor? = nil) throws -> Variable {
        let n = x0.shape[0]
        guard noise.shape == x0.shape, timesteps.count == n, rowWeights.count == n, conditioning.count == n else {
            throw TrainingError.invalidSettings("loss: samples \(x0.shape), noise \(noise.shape), \(timesteps.count) timesteps, "
                + "\(rowWeights.count) weights, conditioning \(conditioning.context.shape)")
        }
        let xt = try schedule.addNoise(x0, noise: noise, timesteps: timesteps)
        var target = try schedule.trainingTarget(prediction, x0: x0, noise: noise, timesteps: timesteps)
        if let anchor, !anchor.rows.isEmpty {
            guard anchor.rows.allSatisfy({ (0..<n).contains($0) }) else {
                throw TrainingError.invalidSettings("loss: anchored rows \(anchor.rows) outside a batch of \(n)")
            }
            let predicted = try anchor.predict(selectRows(xt, anchor.rows), anchor.rows.map { timesteps[$0] })
            guard predicted.shape == [anchor.rows.count] + Array(x0.shape.dropFirst()) else {
                throw TrainingError.invalidSettings("loss: the anchor predicted \(predicted.shape) for \(anchor.rows.count) rows of \(x0.shape)")
            }
            target = replaceRows(target, anchor.rows, with: predicted)
        }
        let output = try unet(Variable(xt), timesteps: timesteps.map(Float.init), conditioning: conditioning)
        let diff = try sub(output, Variable(target))
        let perRow = Float(x0.count / n)
        let weights = Tensor(shape: [n, 1, 1, 1]) { w in
            for i in 0..<n {
                let snrWeight = snrGamma.map { Float(schedule.minSNRWeight(timesteps[i], gamma: $0, prediction: prediction)) } ?? 1
                w[i] = rowWeights[i] * snrWeight / perRow
            }
        }
        return sum(try mul(try mul(diff, diff), Variable(weights)))
    }
}

/// Rows of a batch whose training target is a prediction rather than the noise (or v) drawn for them:
/// `predict(x_t of those rows, their timesteps)` returns [rows.count, H, W, C] in the objective's parameterisation.
public struct TargetAnchor {
    public var rows: [Int]
    public var predict: (Tensor, [Int]) throws -> Tensor

    public init(rows: [Int], predict: @escaping (Tensor, [Int]) throws -> Tensor) {
        self.rows = rows
        self.predict = predict
    }
}

/// Rows `rows` of a batch [N] + S, in that order: [rows.count] + S.
public func selectRows(_ t: Tensor, _ rows: [Int]) -> Tensor {
    let size = t.count / max(t.shape[0], 1)
    return Tensor(shape: [rows.count] + Array(t.shape.dropFirst())) { out in
        t.withUnsafeBufferPointer { src in
            for (i, r) in rows.enumerated() { (out.baseAddress! + i * size).update(from: src.baseAddress! + r * size, count: size) }
        }
    }
}

/// `t` with rows `rows` replaced by the rows of `values` ([rows.count] + S).
public func replaceRows(_ t: Tensor, _ rows: [Int], with values: Tensor) -> Tensor {
    let size = t.count / max(t.shape[0], 1)
    return Tensor(shape: t.shape) { out in
        t.withUnsafeBufferPointer { src in out.baseAddress!.update(from: src.baseAddress!, count: t.count) }
        values.withUnsafeBufferPointer { v in
            for (i, r) in rows.enumerated() { (out.baseAddress! + r * size).update(from: v.baseAddress! + i * size, count: size) }
        }
    }
}

/// Stacks equally shaped tensors into a batch: n tensors of shape S → [n] + S.
func stackBatch(_ parts: [Tensor]) throws -> Tensor {
    guard let first = parts.first, parts.allSatisfy({ $0.shape == first.shape }) else {
        throw TrainingError.invalidSettings("cannot batch tensors of shapes \(parts.map(\.shape))")
    }
    let size = first.count
    return Tensor(shape: [parts.count] + first.shape) { out in
        for (i, p) in parts.enumerated() {
            p.withUnsafeBufferPointer { src in (out.baseAddress! + i * size).update(from: src.baseAddress!, count: size) }
        }
    }
}

/// Concatenates tensors along their first axis: [n_i] + S → [Σ n_i] + S.
func concatBatch(_ parts: [Tensor]) throws -> Tensor {
    let stacked = try stackBatch(parts)
    return try stacked.reshaped([parts.count * parts[0].shape[0]] + parts[0].shape.dropFirst())
}
