// ModelSource: what a user names as "the model" — a diffusers folder or one original-layout `.safetensors`
// file — plus the options that go with it (another VAE, the prediction type, a tokenizer folder), and the one
// place that turns it into a `StableDiffusionModel`.

import CLIPText
import DiffusionModels
import Foundation
import NN
import SafeTensors
import Schedulers

public struct ModelSource: Sendable {
    /// A diffusers pipeline folder or a single `.safetensors` checkpoint.
    public var path: String
    /// Replaces the model's VAE: an LDM-layout VAE file (`vae-ft-mse-840000-ema-pruned.safetensors`), the VAE
    /// of another single-file checkpoint, or a diffusers `vae/` folder.
    public var vae: String?
    /// Overrides the prediction type (a single file's yaml and family default, or a folder's scheduler config).
    public var prediction: PredictionType?
    /// A tokenizer folder (`vocab.json` + `merges.txt`) for a single file, instead of the embedded CLIP vocabulary.
    public var tokenizer: String?

    public init(path: String, vae: String? = nil, prediction: PredictionType? = nil, tokenizer: String? = nil) {
        self.path = path
        self.vae = vae
        self.prediction = prediction
        self.tokenizer = tokenizer
    }

    /// Whether `path` names an existing file (not a folder).
    public var isSingleFile: Bool {
        var isFolder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && !isFolder.boolValue
    }

    /// Loads the model; `note` describes what was read from a single file
    /// ("SD-2.x, v-prediction (from sd21v.yaml)"), nil for a folder.
    public func load() throws -> (model: StableDiffusionModel, note: String?) {
        try Self.refusePickle(path)
        if (path as NSString).pathExtension.lowercased() == "safetensors", !FileManager.default.fileExists(atPath: path) {
            throw PipelineError.invalidFile(path: path, reason: "no such file")
        }
        if !isSingleFile {
            let folder = try StableDiffusionModel(path: path)
            guard vae != nil || prediction != nil else { return (folder, nil) }
            var scheduler = folder.schedulerConfig
            if let prediction { scheduler.predictionType = prediction }
            let model = try StableDiffusionModel(
                name: folder.name, tokenizer: folder.tokenizer, textEncoder: folder.textEncoder, unet: folder.unet,
                vae: try vae.map(Self.loadVAE) ?? folder.vae, schedulerConfig: scheduler, hashedFile: folder.unetWeights,
                tokenizer2: folder.tokenizer2, textEncoder2: folder.textEncoder2,
                forceZerosForEmptyPrompt: folder.forceZerosForEmptyPrompt, recommendedGuidance: folder.recommendedGuidance)
            return (model, nil)
        }
        let checkpoint = try SingleFileCheckpoint(path: path)
        let (prediction, origin) = checkpoint.predictionType(override: prediction)
        let tokenizer = try singleFileTokenizer(family: checkpoint.family)
        guard tokenizer.vocabularySize <= checkpoint.textConfig.vocabSize else {
            throw PipelineError.invalidFile(path: path, reason: "the text encoder has \(checkpoint.textConfig.vocabSize) token "
                + "embeddings, fewer than the tokenizer's \(tokenizer.vocabularySize) ids; pass --tokenizer DIR (its own "
                + "vocab.json and merges.txt)")
        }
        let model = try StableDiffusionModel(
            name: checkpoint.name, tokenizer: tokenizer, textEncoder: checkpoint.loadTextEncoder(),
            unet: checkpoint.loadUNet(), vae: try vae.map(Self.loadVAE) ?? checkpoint.loadVAE(),
            schedulerConfig: SingleFileCheckpoint.schedulerConfig(prediction: prediction), hashedFile: checkpoint.url)
        let kind = prediction == .vPrediction ? "v-prediction" : prediction == .epsilon ? "ε-prediction" : prediction.rawValue
        return (model, "\(checkpoint.family.rawValue), \(kind) (\(origin))")
    }

    /// SD-1 pads prompts with `<|endoftext|>`, SD-2 with `!` (as their diffusers tokenizers do).
    private func singleFileTokenizer(family: StableDiffusionFamily) throws -> BPETokenizer {
        let configuration = TokenizerConfiguration(padToken: family == .sd2 ? "!" : "<|endoftext|>")
        if let tokenizer {
            let dir = URL(fileURLWithPath: tokenizer, isDirectory: true)
            for name in ["vocab.json", "merges.txt"] where !FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path) {
                throw PipelineError.missingComponent(component: "tokenizer", folder: dir.path, file: name)
            }
            return try BPETokenizer(vocabularyURL: dir.appendingPathComponent("vocab.json"),
                                    mergesURL: dir.appendingPathComponent("merges.txt"), configuration: configuration)
        }
        return try EmbeddedCLIPVocabulary.tokenizer(configuration: configuration)
    }

    /// A standalone VAE: a diffusers `vae/` folder, or an LDM-layout file (`encoder.*`, `decoder.*`, `quant_conv.*`,
    /// `post_quant_conv.*`, also under `first_stage_model.`).
    /// Whether `path` is a diffusers `AutoencoderTiny` folder: its `config.json` says `"_class_name": "AutoencoderTiny"`
    /// (so `--vae DIR` takes a TAESD folder as `--taesd DIR` does).
    public static func isTinyAutoencoderFolder(_ path: String) -> Bool {
        let config = URL(fileURLWithPath: path, isDirectory: true).appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: config),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["_class_name"] as? String == "AutoencoderTiny"
    }

    /// The tiny autoencoder a diffusers model folder provides for `generate --fast`: its `taesd/` subfolder, when that
    /// holds an `AutoencoderTiny` config; nil otherwise (and for single files).
    public static func bundledTinyAutoencoderFolder(modelPath: String) -> String? {
        let dir = URL(fileURLWithPath: modelPath, isDirectory: true).appendingPathComponent("taesd").path
        return isTinyAutoencoderFolder(dir) ? dir : nil
    }

    /// A diffusers `AutoencoderTiny` folder (TAESD: `config.json` + `diffusion_pytorch_model.safetensors`), for
    /// `--taesd DIR`; encoder and decoder are loaded strictly.
    public static func loadTinyAutoencoder(_ path: String) throws -> AutoencoderTiny {
        try refusePickle(path)
        let dir = URL(fileURLWithPath: path, isDirectory: true)
        let config = dir.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: config.path) else {
            throw PipelineError.invalidFile(path: dir.path, reason: "--taesd: no config.json (expected a diffusers AutoencoderTiny folder)")
        }
        let weights = try DiffusersFolder.componentWeights(in: dir) {
            PipelineError.missingComponent(component: "taesd", folder: dir.path, file: "diffusion_pytorch_model.safetensors")
        }
        do {
            let model = AutoencoderTiny(config: try AutoencoderTinyConfig(contentsOf: config))
            try model.load(stateDict: try SafeTensorsFile(path: weights.path).loadAll())
            return model
        } catch {
            throw PipelineError.componentLoad(component: "taesd", path: weights.path, underlying: error)
        }
    }

    static func loadVAE(_ path: String) throws -> AutoencoderKL {
        try refusePickle(path)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw PipelineError.invalidFile(path: path, reason: "--vae: no such file or folder")
        }
        if isFolder.boolValue {
            let dir = URL(fileURLWithPath: path, isDirectory: true)
            let config = dir.appendingPathComponent("config.json")
            guard FileManager.default.fileExists(atPath: config.path) else {
                throw PipelineError.missingComponent(component: "vae", folder: dir.path, file: "config.json")
            }
            guard !isTinyAutoencoderFolder(path) else {
                throw PipelineError.invalidFile(path: path, reason: "a tiny autoencoder (AutoencoderTiny): generate takes it "
                    + "with --taesd or --vae; the model needs a full VAE here")
            }
            let weights = try DiffusersFolder.componentWeights(in: dir) {
                PipelineError.missingComponent(component: "vae", folder: dir.path, file: "diffusion_pytorch_model.safetensors")
            }
            do {
                let model = AutoencoderKL(config: try AutoencoderKLConfig(contentsOf: config))
                try model.load(stateDict: try SafeTensorsFile(path: weights.path).loadAll())
                return model
            } catch {
                throw PipelineError.componentLoad(component: "vae", path: weights.path, underlying: error)
            }
        }
        let file = try SafeTensorsFile(path: path)
        let prefix = file.names.contains { $0.hasPrefix(SingleFileCheckpoint.vaePrefix) } ? SingleFileCheckpoint.vaePrefix : ""
        if file.names.contains(where: { $0.hasPrefix(prefix + "encoder.down_blocks.") }) {
            throw PipelineError.invalidFile(path: path, reason: "a VAE in the diffusers layout: give --vae its folder (with config.json)")
        }
        // A whole checkpoint lends its VAE (first_stage_model.*); a VAE file must hold nothing else.
        var keys: [String] = [], unknown: [String] = []
        for name in file.names {
            if name.hasPrefix("model_ema.") || name.hasPrefix("loss.") { continue }   // training leftovers
            if name.hasPrefix(prefix) { keys.append(String(name.dropFirst(prefix.count))) }
            else if prefix.isEmpty { unknown.append(name) }
        }
        do {
            guard unknown.isEmpty else {
                throw StateDictError.multiple(unknown.sorted().map { .unusedTensor(key: $0, shape: (try? file.info($0).shape) ?? []) })
            }
            return try SingleFileCheckpoint.loadVAE(file: file, prefix: prefix, keys: keys)
        } catch let error as DetectionError {
            throw PipelineError.invalidFile(path: path, reason: error.message)
        } catch {
            throw PipelineError.componentLoad(component: "vae", path: path, underlying: error)
        }
    }

    /// Pickled checkpoints run code when loaded: refused, with the way to a `.safetensors` file.
    static func refusePickle(_ path: String) throws {
        let ext = (path as NSString).pathExtension.lowercased()
        guard ["ckpt", "pt", "pth", "bin", "pkl"].contains(ext) else { return }
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        throw PipelineError.invalidFile(path: path, reason: """
            a pickled checkpoint is refused (unpickling can run arbitrary code). Download the model's .safetensors \
            release (most are published as one), or convert it once with PyTorch: python -c "import torch, \
            safetensors.torch as st; sd = torch.load('\(stem).\(ext)', map_location='cpu', weights_only=True); \
            sd = sd.get('state_dict', sd); st.save_file({k: v.contiguous() for k, v in sd.items() \
            if isinstance(v, torch.Tensor)}, '\(stem).safetensors')"
            """)
    }
}
