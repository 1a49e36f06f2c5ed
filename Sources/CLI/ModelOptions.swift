// The model options that `generate` and `train-style` share: `--pipeline` (spelled `-m` and `--model` too, as
// stable-diffusion.cpp does; the commands declare those spellings) naming a diffusers folder or a single original-layout `.safetensors` file,
// `--vae`, `--prediction` and `--tokenizer`.

import Foundation
import Pipeline
import Schedulers

struct ModelOptions {
    /// Options taking a value, besides `pipeline` itself.
    static let names: Set<String> = ["vae", "prediction", "tokenizer"]

    static let help = """
      --pipeline PATH     the model: a diffusers folder, or one .safetensors checkpoint in the original layout
                          (v1-5-pruned-emaonly.safetensors, v2-1_768-ema-pruned.safetensors, fine-tunes);
                          also -m PATH, --model PATH (default: the embedded pipelines/toy)
      --vae PATH          use this VAE instead of the model's: a .safetensors VAE (vae-ft-mse-840000-ema-pruned)
                          or checkpoint, or a diffusers vae/ folder (generate: an AutoencoderTiny folder is --taesd)
      --prediction v|epsilon  the model's prediction type (single files: else MODEL.yaml beside the file, else
                          v for SD-2.x and epsilon for SD-1.x)
      --tokenizer DIR     vocab.json + merges.txt for a single file instead of the embedded CLIP vocabulary
    """

    var vae: String?
    var prediction: PredictionType?
    var tokenizer: String?

    init(_ args: ParsedArguments) throws {
        vae = args.string("vae")
        tokenizer = args.string("tokenizer")
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
        return model
    }
}
