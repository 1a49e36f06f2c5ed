// ModelBench: the `unet` and `vae` suites. Builds a model from a named config with seeded random
// weights, times whole forward passes without gradient recording (median of `--repeat` runs), and prints
// time, GFLOP/s (analytic count: convolutions, linear layers and attention QKᵀ/PV) and peak RSS.
// bench/torch_models.py runs the same shapes through diffusers for the side-by-side ratio.
import Autograd
import DiffusionModels
import CLI
import Foundation
import NN
import TensorCore

/// `bench unet [--config sd15|sd21|sdxl|tiny|toy] [--batch N] [--size H] [--tokens S] [--repeat N] [--threads N] [--count]
/// [--backward [--checkpointing]] [--profile]`.
/// `--lora rank=R` compares base, one adapter unfused and fused, and per-image adapters (LoRABench.swift).
func runUNetBench(_ a: BenchArguments) throws { try runModelBench(a, unetBench) }

/// `bench vae [--config sd15|tiny] [--batch N] [--size h] [--repeat N] [--threads N] [--encode] [--tiled] [--count]`
/// (`--tiled`: the tiled decode of `--vae-tiling`; run it and the plain decode as separate processes to compare peak RSS).
func runVAEBench(_ a: BenchArguments) throws { try runModelBench(a, vaeBench) }

func runModelBench(_ a: BenchArguments, _ body: (BenchArguments) throws -> Void) throws {
    try Parallel.$maxThreads.withValue(try a.int("--threads") ?? Parallel.maxThreads) { try body(a) }
}

/// A suite's arguments (CLI's parser), looked up by their `--name` spelling.
struct BenchArguments {
    let parsed: ParsedArguments
    private func name(_ flag: String) -> String { String(flag.drop(while: { $0 == "-" })) }
    func string(_ flag: String) -> String? { parsed.string(name(flag)) }
    func int(_ flag: String) throws -> Int? { try parsed.int(name(flag)) }
    func double(_ flag: String) throws -> Double? { try parsed.double(name(flag)) }
    func has(_ flag: String) -> Bool { parsed.has(name(flag)) }
}

private func unetBench(_ a: BenchArguments) throws {
    let name = a.string("--config") ?? "sd15"
    let configs: [String: UNet2DConditionConfig] = ["sd15": .sd15, "sd21": .sd21, "sdxl": .sdxl, "tiny": .tiny,
                                                    "toy": toyUNetConfig]
    guard let config = configs[name] else { throw ModelBenchError.unknownConfig(name, configs.keys.sorted()) }
    let batch = try a.int("--batch") ?? 2, size = try a.int("--size") ?? config.sampleSize ?? 64
    let tokens = try a.int("--tokens") ?? (name == "toy" ? 32 : 77), repeats = try a.int("--repeat") ?? 1
    let flops = FLOPCount.unet(config, batch: batch, size: size, tokens: tokens)
    if a.has("--count") { return report("unet \(name) batch \(batch) \(size)×\(size)", flops: flops, times: []) }
    var unet: UNet2DConditionModel!
    let setup = timeOnce {
        unet = UNet2DConditionModel(config: config)
        randomize(unet, seed: 1)
        unet.eval()
    }
    print(String(format: "setup (build + random weights) %.1f s", setup))
    try applyBenchQuantization(unet, a)        // QuantizedBench.swift
    try applyBenchPrecision(unet, a)
    resetPeakRSS()
    let cpuStart = processCPUSeconds()
    var random = PhiloxRandom(seed: 2)
    let sample = Variable(random.normal(shape: [batch, size, size, config.inChannels]))
    let context = Variable(random.normal(shape: [batch, tokens, config.crossAttentionDim[0]]))
    let conditioning = benchConditioning(config, context: context, size: size, random: &random)
    if let spec = a.string("--lora") {
        return try loraUNetBench(unet, spec: spec, sample: sample, context: context, rounds: repeats,
                                 cpuTime: a.has("--cpu-time"))
    }
    let label = "unet \(name) batch \(batch) \(size)×\(size)×\(config.inChannels), context \(tokens)×\(config.crossAttentionDim[0])"
    if a.has("--backward") {
        // Training's shape of work without adapters: frozen weights, gradient for the input only.
        unet.freeze()
        unet.gradientCheckpointing = a.has("--checkpointing")
        let times = try (0..<repeats).map { _ in
            try timeThrowing {
                let x = Variable(sample.value, requiresGrad: true)
                let out = try unet(x, timesteps: [500], conditioning: conditioning)
                try mean(mul(out, out)).backward()
            }
        }
        print(label + ", forward + input backward" + (unet.gradientCheckpointing ? ", checkpointing" : ""))
        print(String(format: "  time %.3f s (median of %d: %@)", median(times), times.count,
                     times.map { String(format: "%.3f", $0) }.joined(separator: ", ")))
        print(String(format: "  peak RSS %.2f GB, %d threads", peakRSSBytes() / 1e9, Parallel.maxThreads))
        return
    }
    // --profile: time per kernel over every run but the first (as `bench train --profile`).
    let profile = a.has("--profile") || a.has("--profile-shapes") ? KernelProfile(byShape: a.has("--profile-shapes")) : nil
    let kernels = profile.map { Kernels.active.instrumented(by: $0) } ?? Kernels.active
    var cpu: [Double] = []
    let times = try (0..<repeats).map { run in
        if run == 1 { profile?.reset() }
        let cpuBefore = processCPUSeconds()
        defer { cpu.append(processCPUSeconds() - cpuBefore) }
        return try Kernels.$override.withValue(kernels) {
            try timeThrowing { _ = try withNoGrad { try unet(sample, timesteps: [500], conditioning: conditioning) } }
        }
    }
    report(label, flops: flops, times: times)
    if let profile {
        let warm = repeats > 1 ? 1 : 0
        profile.printTable(steps: repeats - warm, stepSeconds: times.dropFirst(warm).reduce(0, +),
                           stepCPUSeconds: cpu.dropFirst(warm).reduce(0, +))
    }
    printMemoryAndCPU(cpuSeconds: processCPUSeconds() - cpuStart, runs: repeats)
}

/// The benchmark's conditioning: `context`, and for an SDXL UNet random pooled embeds and the time ids of a
/// square picture of `size` latents (8 pixels each), as bench/torch_models.py passes them.
func benchConditioning(_ config: UNet2DConditionConfig, context: Variable, size: Int,
                       random: inout PhiloxRandom) -> Conditioning {
    guard let textTime = config.textTime else { return Conditioning(context: context) }
    let n = context.shape[0], pixels = Float(size * 8)
    return Conditioning(context: context, textEmbeds: Variable(random.normal(shape: [n, textTime.textEmbedDim])),
                        timeIds: Tensor(shape: [n, 6]) { out in
                            for r in 0..<n { for (i, v) in [pixels, pixels, 0, 0, pixels, pixels].enumerated() { out[r * 6 + i] = v } }
                        })
}

private func vaeBench(_ a: BenchArguments) throws {
    let name = a.string("--config") ?? "sd15"
    let configs: [String: AutoencoderKLConfig] = ["sd15": .sd15, "tiny": .tiny]
    guard let config = configs[name] else { throw ModelBenchError.unknownConfig(name, configs.keys.sorted()) }
    let batch = try a.int("--batch") ?? 1, size = try a.int("--size") ?? 64, repeats = try a.int("--repeat") ?? 1
    let f = config.downsamplingFactor
    if a.has("--count") {
        return report("vae \(name) decode \(size)×\(size) / encode \(size * f)×\(size * f), batch \(batch)",
                      flops: FLOPCount.vaeDecoder(config, batch: batch, size: size), times: [],
                      encoder: FLOPCount.vaeEncoder(config, batch: batch, size: size * f))
    }
    let vae = AutoencoderKL(config: config)
    randomize(vae, seed: 1)
    vae.eval()
    try applyBenchPrecision(vae, a)
    var random = PhiloxRandom(seed: 2)
    if a.has("--encode") {
        let image = Variable(random.normal(shape: [batch, size * f, size * f, config.inChannels]))
        let times = try (0..<repeats).map { _ in
            try timeThrowing { _ = try withNoGrad { try vae.encode(image) } }
        }
        report("vae \(name) encode batch \(batch) \(size * f)×\(size * f) → \(size)×\(size)×\(config.latentChannels)",
               flops: FLOPCount.vaeEncoder(config, batch: batch, size: size * f), times: times)
    } else {
        let latent = Variable(random.normal(shape: [batch, size, size, config.latentChannels]))
        let tiled = a.has("--tiled")
        let times = try (0..<repeats).map { _ in
            try timeThrowing { _ = try withNoGrad { tiled ? Variable(try vae.tiledDecode(latent.value)) : try vae.decode(latent) } }
        }
        report("vae \(name) \(tiled ? "tiled " : "")decode batch \(batch) \(size)×\(size)×\(config.latentChannels) → \(size * f)×\(size * f)",
               flops: tiled ? tiledDecoderFLOPs(vae, batch: batch, size: size) : FLOPCount.vaeDecoder(config, batch: batch, size: size),
               times: times)
    }
}

/// FLOPs of `tiledDecode` on size×size latents: per tile, the full tile's count scaled by its area (convolutions,
/// linear layers) and by its area squared (the mid-block's attention).
private func tiledDecoderFLOPs(_ vae: AutoencoderKL, batch: Int, size: Int) -> FLOPCount {
    let g = vae.tileGeometry
    let full = FLOPCount.vaeDecoder(vae.config, batch: batch, size: g.tileLatent)
    let sides = stride(from: 0, to: size, by: g.latentStride).map { Double(min(g.tileLatent, size - $0)) / Double(g.tileLatent) }
    var f = FLOPCount()
    for a in sides { for b in sides {
        f.conv += full.conv * a * b
        f.linear += full.linear * a * b
        f.attention += full.attention * a * a * b * b
    } }
    return f
}

enum ModelBenchError: Error, CustomStringConvertible {
    case unknownConfig(String, [String])
    var description: String {
        switch self {
        case let .unknownConfig(name, known): return "unknown --config '\(name)'; known: \(known.joined(separator: ", "))"
        }
    }
}

/// Seeded N(0, 1/fan-in) weights, small biases, norms left at γ = 1, β = 0: activations stay O(1).
/// Weights cycle through one pool of 2²⁰ normal draws (drawing 860 M values would dominate the run).
func randomize(_ model: Module, seed: UInt64) {
    var random = PhiloxRandom(seed: seed)
    let pool = random.normal(shape: [1 << 20])
    var offset = 0
    func fill(_ v: Variable, std: Float) {
        v.value = Tensor(shape: v.shape) { out in
            pool.withUnsafeBufferPointer { p in
                for i in out.indices { out[i] = std * p[(offset + i) & (p.count - 1)] }
            }
        }
        offset += 7919
    }
    for (_, m) in model.namedModules() {
        if let conv = m as? Conv2d {
            let w = conv.weight.shape                                      // [kh, kw, Cin, Cout]
            fill(conv.weight, std: 1 / Float(w[0] * w[1] * w[2]).squareRoot())
            if let b = conv.bias { fill(b, std: 0.01) }
        } else if let linear = m as? Linear {
            fill(linear.weight, std: 1 / Float(linear.inFeatures).squareRoot())
            if let b = linear.bias { fill(b, std: 0.01) }
        }
    }
}

private func timeThrowing(_ body: () throws -> Void) throws -> Double {
    var failure: Error?
    let t = timeOnce { do { try body() } catch { failure = error } }
    if let failure { throw failure }
    return t
}

/// Prints time, GFLOP/s and peak RSS; with no times (`--count`) only the FLOP counts.
private func report(_ label: String, flops: FLOPCount, times: [Double], encoder: FLOPCount? = nil) {
    print(label)
    guard !times.isEmpty else {
        for (name, f) in [("", flops)] + (encoder.map { [("encoder ", $0)] } ?? []) {
            print(String(format: "  %@%.1f GFLOP (conv %.1f, linear %.1f, attention %.1f)",
                         name, f.total / 1e9, f.conv / 1e9, f.linear / 1e9, f.attention / 1e9))
        }
        return
    }
    let t = median(times)
    print(String(format: "  time %.3f s (median of %d: %@)", t, times.count,
                 times.map { String(format: "%.3f", $0) }.joined(separator: ", ")))
    print(String(format: "  %.1f GFLOP (conv %.1f, linear %.1f, attention %.1f) → %.1f GFLOP/s",
                 flops.total / 1e9, flops.conv / 1e9, flops.linear / 1e9, flops.attention / 1e9, flops.total / t / 1e9))
    print(String(format: "  peak RSS %.2f GB, %d threads", peakRSSBytes() / 1e9, Parallel.maxThreads))
    printTensorMemory()
}
