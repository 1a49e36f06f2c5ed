// GenerateBench: the `generate` suite. A whole text-to-image run (text encoder, `--steps` sampler steps of
// the UNet at batch 2 for classifier-free guidance, VAE decode) through Pipeline.TextToImage, with seeded
// random weights; prints each phase's time and the peak RSS. bench/torch_generate.py runs the same
// through diffusers' StableDiffusionPipeline. `--lora rank=R --batch N` compares, per image, N prompts with
// N different adapters in one batch against N prompts sharing one adapter and N runs alone.
import Adapters
import CLIPText
import DiffusionModels
import Foundation
import NN
import Pipeline
import Schedulers
import TensorCore

/// `bench generate [--config sd15|tiny | --pipeline DIR] [--steps N] [--sampler NAME] [--cfg G] [--taesd] [--size PIXELS] [--threads N]
/// [--precision bf16]
/// [--lora rank=R --batch N --rounds K]` (`--cfg 1`: no unconditional pass; `--taesd`: decode with a random-weight
/// TAESD of madebyollin/taesd's shape instead of the VAE; `--sampler lcm --steps 4 --cfg 1 --taesd` is `generate --fast`;
/// `--pipeline DIR`: a model folder's own weights, e.g. the embedded `pipelines/toy`, instead of a random model).
func runGenerateBench(_ a: BenchArguments) throws { try runModelBench(a, generateBench) }

private func generateBench(_ a: BenchArguments) throws {
    let name = a.string("--pipeline").map { URL(fileURLWithPath: $0).lastPathComponent } ?? a.string("--config") ?? "sd15"
    let configs: [String: (UNet2DConditionConfig, AutoencoderKLConfig, CLIPTextConfig)] = [
        "sd15": (.sd15, .sd15, .clipL),
        "tiny": (.tiny, .tiny, CLIPTextConfig(vocabSize: 1000, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
                                              numAttentionHeads: 4)),
    ]
    let steps = try a.int("--steps") ?? 20
    let samplerName = a.string("--sampler") ?? "dpm++2m"
    guard let sampler = SamplerKind(userName: samplerName) else { throw ModelBenchError.unknownConfig(samplerName, []) }
    var model: StableDiffusionModel!
    let setup = try timeThrowingGenerate {
        if let folder = a.string("--pipeline") {
            model = try ModelSource(path: folder).load().model
            return
        }
        guard let (unetConfig, vaeConfig, textConfig) = configs[name] else {
            throw ModelBenchError.unknownConfig(name, configs.keys.sorted())
        }
        let unet = UNet2DConditionModel(config: unetConfig)
        let vae = AutoencoderKL(config: vaeConfig)
        let text = try CLIPTextModel(config: textConfig)
        let modules: [Module] = [unet, vae, text]
        for (i, m) in modules.enumerated() {
            randomize(m, seed: UInt64(i + 1))
            m.eval()
        }
        model = try StableDiffusionModel(name: "random-\(name)", tokenizer: try byteLevelTokenizer(), textEncoder: text,
                                         unet: unet, vae: vae)
    }
    for module in [model.unet, model.textEncoder, model.vae] as [Module?] {
        if let module { try applyBenchPrecision(module, a) }     // --precision bf16 (QuantizedBench.swift)
    }
    let size = try a.int("--size") ?? model.defaultSize
    print(String(format: a.has("--pipeline") ? "setup (load) %.1f s" : "setup (build + random weights) %.1f s", setup))
    if let spec = a.string("--lora") {
        return try perImageAdapterBench(model: model, spec: spec, steps: steps, sampler: sampler, size: size,
                                        batch: try a.int("--batch") ?? 4, rounds: try a.int("--rounds") ?? 3)
    }
    var pipeline = TextToImage(model: model)
    if a.has("--taesd") {
        let taesd = AutoencoderTiny(config: AutoencoderTinyConfig())
        randomize(taesd, seed: 4)
        pipeline.tinyAutoencoder = taesd
    }
    let cfg = try a.double("--cfg") ?? 7.5
    let parameters = try pipeline.resolve(GenerationParameters(prompt: "a photo of an astronaut riding a horse on mars",
                                                               steps: steps, guidanceScale: cfg, sampler: sampler,
                                                               seed: 0, width: size, height: size))
    let text = try timeThrowingGenerate { _ = try pipeline.conditioning(parameters, guided: cfg > 1) }
    let cpuStart = processCPUSeconds()
    var stepEnds: [Double] = []
    var latents: Tensor!
    let denoise = try timeThrowingGenerate {
        latents = try pipeline.denoise(parameters) { stepEnds.append($0.elapsed) }
    }
    let decode = try timeThrowingGenerate { _ = try pipeline.decode(latents) }
    let cpu = processCPUSeconds() - cpuStart
    let stepTimes = zip(stepEnds, [0] + stepEnds).map { $0 - $1 }
    print("generate \(name) \(size)×\(size), \(sampler.displayName), \(steps) steps, "
        + (cfg > 1 ? "CFG \(cfg) (UNet batch 2)" : "no guidance (UNet batch 1)") + (a.has("--taesd") ? ", TAESD decode" : ""))
    print(String(format: "  text encoder %.3f s (×2 prompts)", text))
    print(String(format: "  per step %.3f s median (min %.3f, max %.3f)", median(stepTimes),
                 stepTimes.min() ?? 0, stepTimes.max() ?? 0))
    print(String(format: "  denoise %.1f s (includes text encoding), VAE decode %.1f s, total %.1f s (CPU time %.1f s)",
                 denoise, decode, denoise + decode, cpu))
    print(String(format: "  peak RSS %.2f GB, %d threads", peakRSSBytes() / 1e9, Parallel.maxThreads))
}

/// Denoising time per image (text encoding included, VAE excluded) of `batch` prompts: each alone with its own
/// rank-R adapter on the UNet attention, together sharing one adapter, together with their own adapters, and
/// together without adapters. Rounds interleave the cases; medians.
private func perImageAdapterBench(model: StableDiffusionModel, spec: String, steps: Int, sampler: SamplerKind,
                                  size: Int, batch: Int, rounds: Int) throws {
    guard spec.hasPrefix("rank="), let rank = Int(spec.dropFirst(5)), rank > 0 else {
        throw AdaptersError.invalidSpec(spec: spec, reason: "--lora takes rank=R")
    }
    let set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder)
    var random = PhiloxRandom(seed: 7)
    let names = (0..<batch).map { "a\($0)" }
    for name in names {
        try set.stacks[.unet]!.addTrainable(name: name, rank: rank, targets: .unetAttention, random: &random)
        for (_, _, pair) in set.stacks[.unet]!.pairs(of: name) {
            pair.down.requiresGrad = false
            pair.up.requiresGrad = false
            pair.up.value = random.normal(shape: pair.up.shape, std: 0.01)
        }
    }
    let pipeline = TextToImage(model: model, adapters: set)
    func request(_ i: Int, adapter: String?) -> BatchRequest {
        BatchRequest(parameters: GenerationParameters(prompt: "a photo of thing \(i)", steps: steps, sampler: sampler,
                                                      seed: UInt64(i), width: size, height: size),
                     adapterWeights: adapter.map { [$0: AdapterWeights(unet: 1, textEncoder: 1)] } ?? [:])
    }
    let cases: [(String, [[BatchRequest]])] = [
        ("alone, own adapters", (0..<batch).map { [request($0, adapter: names[$0])] }),
        ("batch, one shared adapter", [(0..<batch).map { request($0, adapter: names[0]) }]),
        ("batch, own adapters", [(0..<batch).map { request($0, adapter: names[$0]) }]),
        ("batch, no adapter", [(0..<batch).map { request($0, adapter: nil) }]),
    ]
    var times = Array(repeating: [Double](), count: cases.count)
    var latents = Array(repeating: [Float](), count: cases.count)
    for round in 0..<rounds {
        for (c, (_, runs)) in cases.enumerated() {
            times[c].append(try timeThrowingGenerate {
                latents[c] = try runs.flatMap { try pipeline.denoise(batch: $0).scalars }
            } / Double(batch))
        }
        if round == 0 {
            let differing = zip(latents[0], latents[2]).filter { $0 != $1 }.count
            print("own adapters: batch vs alone, \(differing) of \(latents[0].count) latent values differ")
        }
        print("round \(round + 1): " + zip(cases, times).map { String(format: "%@ %.3f s", $0.0, $1.last!) }.joined(separator: ", "))
    }
    let m = times.map(median)
    print("generate \(model.name) \(size)×\(size), \(sampler.displayName), \(steps) steps, CFG; \(batch) prompts, "
        + "rank-\(rank) adapters on to_q/to_k/to_v/to_out.0; denoising seconds per image, medians of \(rounds) rounds, "
        + "\(Parallel.maxThreads) threads:")
    for ((name, _), t) in zip(cases, m) {
        print("  " + name.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: " %8.3f s  %.3f× alone", t, t / m[0]))
    }
    print(String(format: "  own adapters / shared adapter in a batch: %.3f×", m[2] / m[1]))
}

private func timeThrowingGenerate(_ body: () throws -> Void) throws -> Double {
    let start = Date()
    try body()
    return Date().timeIntervalSince(start)
}

/// A CLIP-format tokenizer with only the 512 byte symbols (no merges): every text tokenizes, one id per byte.
private func byteLevelTokenizer() throws -> BPETokenizer {
    let printable = Set(Array(33...126) + Array(161...172) + Array(174...255))
    var symbols = [Int](repeating: 0, count: 256)
    var extra = 0
    for b in 0..<256 {
        if printable.contains(b) { symbols[b] = b } else { symbols[b] = 256 + extra; extra += 1 }
    }
    let chars = symbols.map { String(UnicodeScalar(UInt32($0))!) }
    var vocabulary: [String: Int] = [:]
    for (i, c) in (chars + chars.map { $0 + "</w>" }).enumerated() { vocabulary[c] = i }
    vocabulary["<|startoftext|>"] = 512
    vocabulary["<|endoftext|>"] = 513
    return try BPETokenizer(vocabulary: vocabulary, merges: [], configuration: TokenizerConfiguration())
}
