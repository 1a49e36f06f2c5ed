// BaseTrainer: trains the toy base model from scratch — the UNet and the text encoder jointly, full
// weights — on the picture world's images and captions.
//
// Step s of a run (0-based) sees items s·B ..< (s+1)·B of `WorldDataset(seed:)`, and draws its caption
// dropout, timesteps and noise from `PhiloxRandom(seed: seed ^ s·K)`, so a resumed run is the run that
// was never stopped. One step:
//
//     x0 [B, 64, 64, 3] in [−1, 1];  captions (10 % replaced by "")  → context = text(ids) [B, L, C]
//     t ~ U{0, …, 999};  ε ~ N(0, 1);  x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε;  target v = √ᾱ_t·ε − √(1−ᾱ_t)·x0
//     loss = mean_n w_n · mean((unet(x_t, t, context) − v)²),  w_n = min(SNR_t, γ)/(SNR_t + 1)
//     gradients clipped to global norm 1, AdamW, lr: linear warm-up then cosine to 10 %.
import Autograd
import CLIPText
import DiffusionModels
import Foundation
import NN
import PictureWorld
import Pipeline
import SafeTensors
import Schedulers
import TensorCore

public enum BaseModelError: Error, CustomStringConvertible {
    case invalidArgument(String)
    case checkpoint(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidArgument(let m): return m
        case .checkpoint(let path, let reason): return "checkpoint \(path): \(reason)"
        }
    }
}

public struct BaseTrainingConfig: Sendable {
    public var seed: UInt64 = 0
    public var steps: Int = 3000
    public var batchSize: Int = 16
    public var learningRate: Float = 6e-4
    public var warmupSteps: Int = 100
    public var weightDecay: Float = 0.01
    public var captionDropout: Double = 0.1
    /// γ of min-SNR weighting; 0 turns the weighting off.
    public var minSNRGamma: Double = 5
    public var clipNorm: Float = 1

    public init() {}

    /// Learning rate of step `step` (0-based).
    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return learningRate * Float(step + 1) / Float(warmupSteps) }
        let t = Float(step - warmupSteps) / Float(max(steps - warmupSteps, 1))
        return learningRate * (0.1 + 0.9 * 0.5 * (1 + cosf(.pi * min(t, 1))))
    }
}

public final class BaseTrainer {
    public let architecture: ToyArchitecture
    public let config: BaseTrainingConfig
    public let tokenizer: BPETokenizer
    public let vocabulary: BPEVocabulary
    public let unet: UNet2DConditionModel
    public let textEncoder: CLIPTextModel
    /// The model being trained as a pipeline model (no VAE): its `encode(prompts:)` is the conditioning path.
    public let model: StableDiffusionModel
    public let optimizer: AdamW
    public let schedule: NoiseSchedule
    public let data: WorldDataset
    /// Steps done.
    public private(set) var step = 0

    /// A fresh model (weights drawn from `config.seed`) for `architecture`, with its tokenizer.
    public init(architecture: ToyArchitecture, vocabulary: BPEVocabulary, tokenizer: BPETokenizer,
                config: BaseTrainingConfig) throws {
        guard config.steps > 0, config.batchSize > 0 else {
            throw BaseModelError.invalidArgument("training needs steps > 0 and batch > 0")
        }
        self.architecture = architecture
        self.config = config
        self.vocabulary = vocabulary
        self.tokenizer = tokenizer
        unet = UNet2DConditionModel(config: architecture.unet)
        textEncoder = try CLIPTextModel(config: architecture.text)
        var random = PhiloxRandom(seed: config.seed ^ 0xBA5E_0001)
        unet.initializeParameters(random: &random)
        textEncoder.initializeParameters(random: &random)
        unet.train()
        textEncoder.train()
        model = try StableDiffusionModel(name: architecture.name, tokenizer: tokenizer, textEncoder: textEncoder, unet: unet,
                                         vae: nil, schedulerConfig: ToyArchitecture.scheduler)
        let parameters = unet.trainableParameters().map { ("unet." + $0.0, $0.1) }
            + textEncoder.trainableParameters().map { ("text_encoder." + $0.0, $0.1) }
        optimizer = AdamW(parameters: parameters, learningRate: config.learningRate, weightDecay: config.weightDecay,
                          arithmetic: .correctedMoments)
        schedule = try NoiseSchedule(config: ToyArchitecture.scheduler)
        data = try WorldDataset(seed: config.seed, size: architecture.unet.sampleSize ?? 64)
    }

    /// Number of weights (UNet, text encoder).
    public var parameterCounts: (unet: Int, text: Int) {
        (unet.namedParameters().reduce(0) { $0 + $1.1.value.count },
         textEncoder.namedParameters().reduce(0) { $0 + $1.1.value.count })
    }

    /// Runs one training step; returns its loss.
    @discardableResult
    public func trainStep() throws -> Float {
        let b = config.batchSize
        var random = PhiloxRandom(seed: config.seed ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15) ^ 0x57E9)
        unet.zeroGrad()
        textEncoder.zeroGrad()
        optimizer.learningRate = config.learningRate(at: step)
        let loss = try loss(items: Array((step * b)..<((step + 1) * b)), random: &random,
                            captionDropout: config.captionDropout)
        try loss.backward()
        clipGradients(maxNorm: config.clipNorm)
        optimizer.update()
        step += 1
        return loss.value.item
    }

    /// The training loss on dataset items `items` with timesteps and noise drawn from `seed` (no dropout,
    /// no gradient): a fixed yardstick to compare weights with.
    public func evaluationLoss(items: [Int], seed: UInt64) throws -> Float {
        var random = PhiloxRandom(seed: seed)
        return try withNoGrad { try loss(items: items, random: &random, captionDropout: 0).value.item }
    }

    /// The (weighted) denoising loss of one batch; caption dropout, timesteps and noise come from `random`.
    func loss(items: [Int], random: inout PhiloxRandom, captionDropout: Double) throws -> Variable {
        let b = items.count
        let (images, captions, _) = try data.batch(items)                           // [B, H, W, 3] in [−1, 1]
        let prompts = captions.map { Double(random.next() >> 11) * 0x1p-53 < captionDropout ? "" : $0 }
        let timesteps = (0..<b).map { _ in Int(random.next() % UInt64(schedule.numTrainTimesteps)) }
        let noise = random.normal(shape: images.shape)
        let noisy = try schedule.addNoise(images, noise: noise, timesteps: timesteps)
        let target = try schedule.trainingTarget(ToyArchitecture.prediction, x0: images, noise: noise, timesteps: timesteps)
        let weights = timesteps.map { t -> Float in
            config.minSNRGamma > 0
                ? Float(schedule.minSNRWeight(t, gamma: config.minSNRGamma, prediction: ToyArchitecture.prediction)) : 1
        }
        let conditioning = try model.encode(prompts: prompts)                       // [B, L, C]
        let prediction = try unet(Variable(noisy), timesteps: timesteps.map(Float.init), conditioning: conditioning)
        return try weightedMSE(prediction, target: target, weights: weights)
    }

    /// Scales every gradient so that their global L2 norm is at most `maxNorm`; returns the norm before.
    @discardableResult
    func clipGradients(maxNorm: Float) -> Float {
        clipGradientNorm(optimizer.parameters.map(\.1), maxNorm: maxNorm, rule: .aboveMaxNorm)
    }

    // MARK: - Checkpoints

    /// Writes weights (F32), optimiser moments and the step to `path` atomically.
    public func saveCheckpoint(to path: String, extraMetadata: [String: String] = [:]) throws {
        var tensors: [String: Tensor] = [:]
        for (k, t) in unet.stateDict() { tensors["unet." + k] = t }
        for (k, t) in textEncoder.stateDict() { tensors["text_encoder." + k] = t }
        let state = optimizer.state()
        for (k, t) in state.tensors { tensors["optimizer." + k] = t }
        var metadata = extraMetadata
        metadata["step"] = String(step)
        metadata["optimizer_step"] = String(state.step)
        metadata["seed"] = String(config.seed)
        metadata["batch"] = String(config.batchSize)
        metadata["architecture"] = architecture.name
        try SafeTensorsWriter.write(tensors, metadata: metadata, as: .f32, to: path)
    }

    /// Restores a checkpoint written by `saveCheckpoint` (same architecture); returns its metadata.
    @discardableResult
    public func loadCheckpoint(from path: String) throws -> [String: String] {
        let file = try SafeTensorsFile(path: path)
        let metadata = file.metadata
        guard metadata["architecture"] == architecture.name else {
            throw BaseModelError.checkpoint(path: path, reason: "architecture \(metadata["architecture"] ?? "?"), "
                + "this run \(architecture.name)")
        }
        guard let s = metadata["step"].flatMap(Int.init), let os = metadata["optimizer_step"].flatMap(Int.init) else {
            throw BaseModelError.checkpoint(path: path, reason: "no step in its metadata")
        }
        let all = try file.loadAll()
        func part(_ prefix: String) -> [String: Tensor] {
            var out: [String: Tensor] = [:]
            for (k, t) in all where k.hasPrefix(prefix) { out[String(k.dropFirst(prefix.count))] = t }
            return out
        }
        try unet.load(stateDict: part("unet."))
        try textEncoder.load(stateDict: part("text_encoder."))
        try optimizer.restore(tensors: part("optimizer."), step: os)
        step = s
        return metadata
    }
}

/// mean_n w_n · mean_i (p[n, i] − y[n, i])² over a batch [N, …].
func weightedMSE(_ prediction: Variable, target: Tensor, weights: [Float]) throws -> Variable {
    guard prediction.shape == target.shape, prediction.shape.first == weights.count, !weights.isEmpty else {
        throw BaseModelError.invalidArgument("weightedMSE: prediction \(prediction.shape), target \(target.shape), "
            + "\(weights.count) weights")
    }
    let n = weights.count, per = target.count / n
    let diff = Tensor(shape: target.shape) { d in
        prediction.value.withUnsafeBufferPointer { p in
            target.withUnsafeBufferPointer { y in for i in d.indices { d[i] = p[i] - y[i] } }
        }
    }
    var total: Double = 0
    diff.withUnsafeBufferPointer { d in
        for b in 0..<n {
            var s: Double = 0
            for i in (b * per)..<((b + 1) * per) { s += Double(d[i] * d[i]) }
            total += Double(weights[b]) * s
        }
    }
    let value = Tensor(shape: [1], repeating: Float(total / Double(n * per)))
    return Variable.result(value, of: "weightedMSE", inputs: [prediction]) { g in
        let g0 = g.withUnsafeBufferPointer { $0[0] } * 2 / Float(n * per)
        return [Tensor(shape: diff.shape) { out in
            diff.withUnsafeBufferPointer { d in
                for b in 0..<n {
                    let c = g0 * weights[b]
                    for i in (b * per)..<((b + 1) * per) { out[i] = c * d[i] }
                }
            }
        }]
    }
}
