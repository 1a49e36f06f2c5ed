// The model options that `generate` and `train-style` share: `--pipeline` (spelled `-m` and `--model` too, as
// stable-diffusion.cpp does; the commands declare those spellings) naming a diffusers folder or a single original-layout `.safetensors` file,
// `--vae`, `--prediction` and `--tokenizer`.

import Foundation
import NN
import Pipeline
import TensorCore
import Schedulers

struct ModelOptions {
    /// Options taking a value, besides `pipeline` itself.
    static let names: Set<String> = ["vae", "prediction", "tokenizer", "quantize", "precision"]

    static let help = """
      --pipeline PATH     the model: a diffusers folder, or one .safetensors checkpoint in the original layout
                          (v1-5-pruned-emaonly.safetensors, v2-1_768-ema-pruned.safetensors, fine-tunes);
                          also -m PATH, --model PATH (default: the embedded pipelines/toy)
      --vae PATH          use this VAE instead of the model's: a .safetensors VAE (vae-ft-mse-840000-ema-pruned)
                          or checkpoint, or a diffusers vae/ folder (generate: an AutoencoderTiny folder is --taesd)
      --prediction v|epsilon  the model's prediction type (single files: else MODEL.yaml beside the file, else
                          v for SD-2.x and epsilon for SD-1.x)
      --tokenizer DIR     vocab.json + merges.txt for a single file instead of the embedded CLIP vocabulary
      --quantize nf4|fp4  hold the UNet's Linear layers in 4-bit (QLoRA; bitsandbytes' format, blocks of 64):
                          ~1/7 of their F32 memory; a 4-bit folder diffusers + bitsandbytes saved loads as it is
      --quantize-convs    with --quantize: the UNet's convolutions in 4-bit too (beyond bitsandbytes; each is
                          decoded while it runs)
      --precision fp32|bf16  bf16: the model's Linear and convolution weights held in BF16 (half the memory) and
                          their products in BF16 with F32 sums, on CPUs with AVX512-BF16 (AMD Zen 4/5, Intel
                          Sapphire Rapids and later): ~1.7x faster UNet, pictures within a few levels of fp32's;
                          elsewhere it says so and runs fp32
    """

    var vae: String?
    var prediction: PredictionType?
    var tokenizer: String?
    /// `--quantize`: the 4-bit type for the UNet's Linear layers.
    var quantize: FourBitType?
    /// `--quantize-convs`: the convolutions too.
    var quantizeConvolutions = false
    /// `--precision bf16`: BF16 products for the frozen weights.
    var bfloat16 = false

    init(_ args: ParsedArguments) throws {
        vae = args.string("vae")
        tokenizer = args.string("tokenizer")
        if let name = args.string("quantize") {
            guard let type = FourBitType(rawValue: name.lowercased()) else {
                throw CommandLineError.usage("--quantize must be nf4 or fp4, got \"\(name)\"")
            }
            quantize = type
        }
        switch args.string("precision")?.lowercased() {
        case nil, "fp32", "float32", "full": bfloat16 = false
        case "bf16", "bfloat16": bfloat16 = true
        case let other?: throw CommandLineError.usage("--precision must be fp32 or bf16, got \"\(other)\"")
        }
        quantizeConvolutions = args.has("quantize-convs")
        if quantizeConvolutions, quantize == nil {
            throw CommandLineError.usage("--quantize-convs needs --quantize nf4|fp4")
        }
        switch args.string("prediction") {
        case nil: prediction = nil
        case "v", "v_prediction", "v-prediction": prediction = .vPrediction
        case "epsilon", "eps": prediction = .epsilon
        case let other?: throw CommandLineError.usage("--prediction must be v or epsilon, got \"\(other)\"")
        }
    }

    /// Loads the model at `path`; what was read from a single file goes to stderr as one line.
    func load(path: String, program: String) throws -> StableDiffusionModel {
        let (model, note) = try ModelSource(path: path, vae: vae, prediction: prediction, tokenizer: tokenizer).load()
        if let note { printError("\(program): \(model.name): \(note)") }
        if let quantize {
            try model.unet.quantize(UNetQuantization(type: quantize, doubleQuantization: false),
                                    convolutions: quantizeConvolutions)
        }
        if bfloat16 {
            if BFloat16Compute.isAvailable {
                // The base is frozen wherever this runs (generate; train-style trains adapters on top), so each
                // layer holds its weight in BF16 only: half the F32 memory.
                for module in [model.unet, model.textEncoder, model.textEncoder2, model.vae] as [Module?] {
                    module?.freeze()
                    module?.computeInBFloat16(true, holdingWeights: true)
                }
            } else {
                printError("\(program): --precision bf16: this CPU has no AVX512-BF16 (or a lower kernel level is "
                           + "active); computing in fp32")
            }
        }
        let summary = model.unet.quantizedSummary()
        if summary.layers > 0 {
            let type = model.unet.quantizedLinearLayers().first?.1.quantizedWeight?.type.rawValue ?? "4-bit"
            printError("\(program): UNet \(summary.line(type: type))")
        }
        return model
    }
}
