// TrainBench: the `train` suite. One DreamBooth-LoRA optimisation step as train-style runs it: a UNet with
// seeded random frozen weights, rank-R LoRA adapters, forward on noisy inputs, MSE against a target,
// backward (frozen layers compute input gradients only), grad-norm clipping and an AdamW update. Prints
// every step's wall and CPU time, minor page faults and tensor allocations that reached the C library
// (`TensorMemory`), then the median step time and peak RSS; bench/torch_train.py runs the same step with
// diffusers + peft.
//
// `--config toy` is the embedded model's UNet (pipelines/toy) as the main job trains it: batch 2 (instance +
// class image, prior preservation), 64×64 pixels, rank-8 adapters on attention, transformer projections,
// ResNet and sampler convolutions, and the class row's target the frozen base's own prediction (one more
// forward of that row with the adapters at weight 0 and no gradient, as `--prior-target base` does;
// `--no-prior-base` leaves it out). The text encoder is not part of it (random context). `--profile` times
// every kernel call by entry point (KernelProfile) over the steps after the first.
import Adapters
import Autograd
import DiffusionModels
import Foundation
import NN
import TensorCore
import Training

/// `bench train [--config sd15|sdxl|tiny|toy] [--size H] [--batch N] [--rank R] [--repeat N] [--threads N]
/// [--checkpointing] [--no-prior-base] [--profile]`.
func runTrainBench(_ a: BenchArguments) throws {
    try Parallel.$maxThreads.withValue(try a.int("--threads") ?? Parallel.maxThreads) { try trainBench(a) }
}

/// The embedded model's UNet (pipelines/toy/unet/config.json).
let toyUNetConfig = UNet2DConditionConfig(
    sampleSize: 64, inChannels: 3, outChannels: 3,
    downBlockTypes: [.downBlock2D, .crossAttnDownBlock2D, .crossAttnDownBlock2D],
    midBlockType: .unetMidBlock2DCrossAttn, upBlockTypes: [.crossAttnUpBlock2D, .crossAttnUpBlock2D, .upBlock2D],
    blockOutChannels: [32, 64, 128], layersPerBlock: [1, 1, 1], normNumGroups: 16,
    crossAttentionDim: [128, 128, 128], attentionHeads: [4, 4, 4])

private func trainBench(_ a: BenchArguments) throws {
    let name = a.string("--config") ?? "sd15"
    let configs: [String: UNet2DConditionConfig] = ["sd15": .sd15, "sdxl": .sdxl, "tiny": .tiny, "toy": toyUNetConfig]
    guard let config = configs[name] else { throw ModelBenchError.unknownConfig(name, configs.keys.sorted()) }
    let toy = name == "toy"
    let size = try a.int("--size") ?? config.sampleSize ?? 64
    let rank = try a.int("--rank") ?? (toy ? 8 : 4), batch = try a.int("--batch") ?? (toy ? 2 : 1)
    let repeats = try a.int("--repeat") ?? (toy ? 10 : 1), tokens = toy ? 32 : 77
    let unet = UNet2DConditionModel(config: config)
    randomize(unet, seed: 1)
    try applyBenchQuantization(unet, a)        // QuantizedBench.swift
    unet.freeze()
    try applyBenchPrecision(unet, a)
    unet.gradientCheckpointing = a.has("--checkpointing")
    let stack = AdapterStack(root: unet, component: .unet)
    var random = PhiloxRandom(seed: 2)
    let targets: LoRATargets = toy ? .unetAttention + .unetTransformerExtras + .unetResnet + .unetSamplers : .unetAttention
    let layers = try stack.addTrainable(name: "bench", rank: rank, targets: targets, initialization: .gaussian,
                                        random: &random)
    let parameters = unet.trainableParameters()
    let optimizer = AdamW(groups: [ParameterGroup(parameters: parameters)])
    let sample = Variable(random.normal(shape: [batch, size, size, config.inChannels]))
    let context = Variable(random.normal(shape: [batch, tokens, config.crossAttentionDim[0]]))
    let target = Variable(random.normal(shape: [batch, size, size, config.outChannels]))
    let timesteps = (0..<batch).map { Float(500 + 100 * $0) }
    let conditioning = benchConditioning(config, context: context, size: size, random: &random)   // + SDXL's text_time inputs
    // The toy step's class rows (the batch's second half) are trained toward the base's prediction for them.
    let anchored = toy && !a.has("--no-prior-base") ? Array(batch / 2..<batch) : []
    let anchorSample = selectRows(sample.value, anchored), anchorTimesteps = anchored.map { timesteps[$0] }
    let anchorConditioning = Conditioning(context: Variable(selectRows(context.value, anchored)))
    let baseWeights = AdapterRowWeights(rows: ["bench": Array(repeating: 0, count: anchored.count)])
    let profile = a.has("--profile") || a.has("--profile-shapes") ? KernelProfile(byShape: a.has("--profile-shapes")) : nil
    let kernels = profile.map { Kernels.active.instrumented(by: $0) } ?? Kernels.active
    var steps: [StepCost] = []
    var phases: [[Double]] = []     // base forward of the class rows, forward, backward, clip + AdamW + zeroGrad
    resetPeakRSS()
    let cpuStart = processCPUSeconds()
    for _ in 0..<repeats {
        var failure: Error?
        var phase = [Double](repeating: 0, count: 4)
        steps.append(StepCost.measure {
            do {
                try Kernels.$override.withValue(kernels) {
                    var loss: Variable?
                    var stepTarget = target
                    phase[0] = try timeOnceThrowing {
                        guard !anchored.isEmpty else { return }
                        let base = try withNoGrad {
                            try baseWeights.apply {
                                try unet(Variable(anchorSample), timesteps: anchorTimesteps, conditioning: anchorConditioning).value
                            }
                        }
                        stepTarget = Variable(replaceRows(target.value, anchored, with: base))
                    }
                    phase[1] = try timeOnceThrowing {
                        let out = try unet(sample, timesteps: timesteps, conditioning: conditioning)
                        loss = try mseLoss(out, stepTarget)
                    }
                    phase[2] = try timeOnceThrowing { try loss!.backward() }
                    phase[3] = timeOnce {
                        clipGradientNorm(parameters.map(\.1), maxNorm: 1)
                        optimizer.update(learningRate: 1e-4)
                        for (_, p) in parameters { p.zeroGrad() }    // as TrainingLoop does (no tree walk)
                    }
                }
            } catch { failure = error }
        })
        phases.append(phase)
        if let failure { throw failure }
        if steps.count == 1 && repeats > 1 { profile?.reset() }   // profile the warm steps only
    }
    let counts = unet.parameterCounts()
    print("train \(name) batch \(batch) \(size)×\(size)×\(config.inChannels), rank-\(rank) "
        + (toy ? "conv + attention" : "attention") + " LoRA on \(layers) layers"
        + (anchored.isEmpty ? "" : ", \(anchored.count) class row(s) toward the base's prediction")
        + (unet.gradientCheckpointing ? ", checkpointing" : ""))
    print("  \(counts.report)")
    StepCost.printTable(steps)
    let times = steps.map(\.wall)
    print(String(format: "  phases (median): base forward %.1f ms, forward %.1f ms, backward %.1f ms, clip + AdamW + zero grads %.1f ms",
                 median(phases.map { $0[0] }) * 1e3, median(phases.map { $0[1] }) * 1e3, median(phases.map { $0[2] }) * 1e3,
                 median(phases.map { $0[3] }) * 1e3))
    print(String(format: "  step %.3f s (median of %d: %@)", median(times), times.count,
                 times.map { String(format: "%.3f", $0) }.joined(separator: ", ")))
    print(String(format: "  peak RSS %.2f GB, %d threads", peakRSSBytes() / 1e9, Parallel.maxThreads))
    if let profile {
        let warm = repeats > 1 ? Array(steps.dropFirst()) : steps
        profile.printTable(steps: warm.count, stepSeconds: warm.map(\.wall).reduce(0, +),
                           stepCPUSeconds: warm.map(\.cpu).reduce(0, +))
    }
    printMemoryAndCPU(cpuSeconds: processCPUSeconds() - cpuStart, runs: repeats)
}

private func timeOnceThrowing(_ body: () throws -> Void) throws -> Double {
    var failure: Error?
    let t = timeOnce { do { try body() } catch { failure = error } }
    if let failure { throw failure }
    return t
}
