// GenerateBench: the `generate` suite. A whole text-to-image run (text encoder, `--steps` sampler steps of
// the UNet at batch 2 for classifier-free guidance, VAE decode) through Pipeline.TextToImage, with seeded
// random weights; prints each phase's time and the peak RSS. bench/torch_generate.py runs the same
// through diffusers' StableDiffusionPipeline.
import CLIPText
import DiffusionModels
import Foundation
import NN
import Pipeline
import Schedulers
import TensorCore

/// `bench generate [--config sd15|tiny] [--steps N] [--sampler NAME] [--size PIXELS] [--threads N]`.
func runGenerateBench(_ args: [String]) { runModelBench(args, generateBench) }

private func generateBench(_ a: BenchArguments) throws {
    let name = a.string("--config") ?? "sd15"
    let configs: [String: (UNet2DConditionConfig, AutoencoderKLConfig, CLIPTextConfig)] = [
        "sd15": (.sd15, .sd15, .clipL),
        "tiny": (.tiny, .tiny, CLIPTextConfig(vocabSize: 1000, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
                                              numAttentionHeads: 4)),
    ]
    guard let (unetConfig, vaeConfig, textConfig) = configs[name] else {
        throw ModelBenchError.unknownConfig(name, configs.keys.sorted())
    }
    let steps = a.int("--steps") ?? 20
    let samplerName = a.string("--sampler") ?? "dpm++2m"
    guard let sampler = SamplerKind(userName: samplerName) else { throw ModelBenchError.unknownConfig(samplerName, []) }
    var model: StableDiffusionModel!
    let setup = try timeThrowingGenerate {
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
    let size = a.int("--size") ?? model.defaultSize
    print(String(format: "setup (build + random weights) %.1f s", setup))
    let pipeline = TextToImage(model: model)
    let parameters = try pipeline.resolve(GenerationParameters(prompt: "a photo of an astronaut riding a horse on mars",
                                                               steps: steps, guidanceScale: 7.5, sampler: sampler,
                                                               seed: 0, width: size, height: size))
    let text = try timeThrowingGenerate { _ = try pipeline.encodePrompts(parameters, guided: true) }
    var stepEnds: [Double] = []
    var latents: Tensor!
    let denoise = try timeThrowingGenerate {
        latents = try pipeline.denoise(parameters) { stepEnds.append($0.elapsed) }
    }
    let decode = try timeThrowingGenerate { _ = try pipeline.decode(latents) }
    let stepTimes = zip(stepEnds, [0] + stepEnds).map { $0 - $1 }
    print("generate \(name) \(size)×\(size), \(sampler.displayName), \(steps) steps, CFG (UNet batch 2)")
    print(String(format: "  text encoder %.3f s (×2 prompts)", text))
    print(String(format: "  per step %.3f s median (min %.3f, max %.3f)", median(stepTimes),
                 stepTimes.min() ?? 0, stepTimes.max() ?? 0))
    print(String(format: "  denoise %.1f s (includes text encoding), VAE decode %.1f s, total %.1f s",
                 denoise, decode, denoise + decode))
    print(String(format: "  peak RSS %.2f GB, %d threads", peakRSSBytes() / 1e9, Parallel.maxThreads))
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
