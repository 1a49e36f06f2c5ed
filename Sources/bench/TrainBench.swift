// TrainBench: the `train` suite. One DreamBooth-LoRA optimisation step as train-style runs it: a UNet with
// seeded random frozen weights, rank-R LoRA on the attention projections, forward on noisy latents,
// MSE against a target, backward (frozen layers compute input gradients only), grad-norm clipping and an
// AdamW update. Prints the median step time and peak RSS; bench/torch_train.py runs the same step with
// diffusers + peft.
import Adapters
import Autograd
import DiffusionModels
import Foundation
import NN
import TensorCore
import Training

/// `bench train [--config sd15|tiny] [--size H] [--rank R] [--repeat N] [--threads N] [--checkpointing]`.
func runTrainBench(_ a: BenchArguments) throws {
    try Parallel.$maxThreads.withValue(try a.int("--threads") ?? Parallel.maxThreads) { try trainBench(a) }
}

private func trainBench(_ a: BenchArguments) throws {
    let name = a.string("--config") ?? "sd15"
    let configs: [String: UNet2DConditionConfig] = ["sd15": .sd15, "tiny": .tiny]
    guard let config = configs[name] else { throw ModelBenchError.unknownConfig(name, configs.keys.sorted()) }
    let size = try a.int("--size") ?? config.sampleSize ?? 64, rank = try a.int("--rank") ?? 4, repeats = try a.int("--repeat") ?? 1
    let unet = UNet2DConditionModel(config: config)
    randomize(unet, seed: 1)
    try applyBenchQuantization(unet, a)        // QuantizedBench.swift
    unet.freeze()
    unet.gradientCheckpointing = a.has("--checkpointing")
    let stack = AdapterStack(root: unet, component: .unet)
    var random = PhiloxRandom(seed: 2)
    let layers = try stack.addTrainable(name: "bench", rank: rank, targets: .unetAttention, initialization: .gaussian,
                                        random: &random)
    let parameters = unet.trainableParameters()
    let optimizer = AdamW(groups: [ParameterGroup(parameters: parameters)])
    let sample = Variable(random.normal(shape: [1, size, size, config.inChannels]))
    let context = Variable(random.normal(shape: [1, 77, config.crossAttentionDim[0]]))
    let target = Variable(random.normal(shape: [1, size, size, config.outChannels]))
    var times: [Double] = []
    resetPeakRSS()
    let cpuStart = processCPUSeconds()
    for _ in 0..<repeats {
        var failure: Error?
        times.append(timeOnce {
            do {
                let out = try unet(sample, timesteps: [500], conditioning: Conditioning(context: context))
                try mseLoss(out, target).backward()
                clipGradientNorm(parameters.map(\.1), maxNorm: 1)
                optimizer.update(learningRate: 1e-4)
                unet.zeroGrad()
            } catch { failure = error }
        })
        if let failure { throw failure }
    }
    let counts = unet.parameterCounts()
    print("train \(name) batch 1 \(size)×\(size)×\(config.inChannels), rank-\(rank) attention LoRA on \(layers) layers"
        + (unet.gradientCheckpointing ? ", checkpointing" : ""))
    print("  \(counts.report)")
    print(String(format: "  step %.3f s (median of %d: %@)", median(times), times.count,
                 times.map { String(format: "%.3f", $0) }.joined(separator: ", ")))
    print(String(format: "  peak RSS %.2f GB, %d threads", peakRSSBytes() / 1e9, Parallel.maxThreads))
    printMemoryAndCPU(cpuSeconds: processCPUSeconds() - cpuStart, runs: repeats)
}
