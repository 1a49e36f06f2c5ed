// ToyExport: writes the trained model as a diffusers pipeline folder (what `save_pretrained` writes for a
// pixel-space pipeline without VAE; the layout is `DiffusersFolder`'s), weights in F16, text-encoder keys
// `text_model.…` as transformers writes them; and renders sample grids through the pipeline that loads such folders.
import CLIPText
import DiffusionModels
import Foundation
import PNGImage
import Pipeline
import SafeTensors
import TensorCore

public enum ToyExport {
    /// The guidance scale exported models recommend (`model_index.json` `_guidance_scale`) and sample grids and
    /// evaluations use: the embedded model draws cleaner pictures at 3 than at 4, and far cleaner than at diffusers'
    /// 7.5, whose colours burn (pipelines/toy/TRAINING.md).
    public static let recommendedGuidance = 3.0

    /// Writes the folder at `path` (created; existing component files are replaced). Each file is written
    /// atomically, `model_index.json` last.
    public static func write(unet: UNet2DConditionModel, textEncoder: CLIPTextModel, vocabulary: BPEVocabulary,
                             modelMaxLength: Int, to path: String, metadata: [String: String] = [:]) throws {
        let folder = try DiffusersFolder.Writer(path: path, components: ["unet", "text_encoder", "tokenizer", "scheduler"])
        try vocabulary.write(to: folder.folder("tokenizer"), modelMaxLength: modelMaxLength)

        try unet.config.jsonData().write(to: folder.config("unet"), options: .atomic)
        try SafeTensorsWriter.write(unet.stateDict(), metadata: metadata.merging(["format": "pt"]) { a, _ in a },
                                    as: .f16, to: folder.weights("unet").path)

        try textConfigJSON(textEncoder.config).write(to: folder.config("text_encoder"), options: .atomic)
        var text: [String: Tensor] = [:]
        for (k, t) in textEncoder.stateDict() { text["text_model." + k] = t }
        try SafeTensorsWriter.write(text, metadata: ["format": "pt"], as: .f16, to: folder.weights("text_encoder").path)

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(ToyArchitecture.scheduler).write(to: folder.config("scheduler"), options: .atomic)

        try folder.writeIndex(className: "StableDiffusionPipeline", diffusersVersion: "0.42.1", components: [
            "feature_extractor": nil, "safety_checker": nil, "vae": nil,
            "scheduler": ("diffusers", ToyArchitecture.scheduler.className ?? "DDPMScheduler"),
            "text_encoder": ("transformers", "CLIPTextModel"), "tokenizer": ("transformers", "CLIPTokenizer"),
            "unet": ("diffusers", "UNet2DConditionModel"),
        ], fields: ["requires_safety_checker": "false", DiffusersFolder.guidanceKey: String(recommendedGuidance)])
    }

    /// transformers' `text_encoder/config.json` for a CLIPTextModel.
    static func textConfigJSON(_ c: CLIPTextConfig) throws -> Data {
        let object: [String: Any] = [
            "architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
            "vocab_size": c.vocabSize, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.numHiddenLayers, "num_attention_heads": c.numAttentionHeads,
            "max_position_embeddings": c.maxPositionEmbeddings, "hidden_act": c.hiddenAct.rawValue,
            "layer_norm_eps": Double(c.layerNormEps), "eos_token_id": c.eosTokenID,
            "bos_token_id": c.eosTokenID - 1, "pad_token_id": c.eosTokenID, "projection_dim": c.hiddenSize,
            "attention_dropout": 0.0, "dropout": 0.0, "initializer_factor": 1.0, "initializer_range": 0.02,
            "torch_dtype": "float16",
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return Data(Self.writingFloats(of: ["initializer_factor"], in: String(decoding: data, as: UTF8.self)).utf8)
    }

    /// JSONSerialization writes a whole Double as an integer ("1"); transformers (5.x) validates some config
    /// fields as float and refuses an integer there, so those keys get their ".0" back.
    static func writingFloats(of keys: [String], in json: String) -> String {
        var text = json
        for key in keys {
            guard let range = text.range(of: #""\#(key)" : -?[0-9]+(?=[,\n}])"#, options: .regularExpression) else { continue }
            text.replaceSubrange(range, with: text[range] + ".0")
        }
        return text
    }

    /// Images for `prompts` (one per prompt, seed `seed + i`) from the folder at `path`, through `TextToImage`.
    public static func sample(modelAt path: String, prompts: [String], steps: Int = 20,
                              guidance: Double = recommendedGuidance, seed: UInt64 = 0) throws -> [Image] {
        let model = try StableDiffusionModel(path: path)
        let pipeline = TextToImage(model: model)
        return try prompts.enumerated().map { i, prompt in
            let p = GenerationParameters(prompt: prompt, steps: steps, guidanceScale: guidance, seed: seed + UInt64(i))
            return try pipeline.generate(p)[0].image
        }
    }

    /// Images for many prompts at once, prompt i with seed `seed + i` (DPM++ 2M, classifier-free guidance
    /// against the empty prompt), for evaluating a model on hundreds of prompts: `TextToImage`'s one loop
    /// over the whole batch (one UNet batch per step), each image the one `sample` gives for its prompt.
    public static func sampleBatch(_ model: StableDiffusionModel, prompts: [String], steps: Int = 20,
                                   guidance: Double = recommendedGuidance, guidanceRescale: Double = 0,
                                   seed: UInt64 = 0) throws -> [Image] {
        guard !prompts.isEmpty else { return [] }
        let pipeline = TextToImage(model: model)
        let requests = prompts.enumerated().map { i, prompt in
            BatchRequest(parameters: GenerationParameters(prompt: prompt, steps: steps, guidanceScale: guidance,
                                                          seed: seed + UInt64(i), guidanceRescale: guidanceRescale))
        }
        return try pipeline.decode(pipeline.denoise(batch: requests))
    }

    /// Images side by side in rows of `columns` (all of one size), 2-pixel grey gaps.
    public static func grid(_ images: [Image], columns: Int) throws -> Image {
        guard let first = images.first else { return try Image(width: 1, height: 1, color: (0, 0, 0)) }
        let (w, h, gap) = (first.width, first.height, 2)
        let cols = max(1, min(columns, images.count)), rows = (images.count + cols - 1) / cols
        let gw = cols * w + (cols - 1) * gap, gh = rows * h + (rows - 1) * gap
        var pixels = [UInt8](repeating: 128, count: gw * gh * 3)
        for (k, im) in images.enumerated() where im.width == w && im.height == h {
            let (ox, oy) = ((k % cols) * (w + gap), (k / cols) * (h + gap))
            for y in 0..<h {
                for x in 0..<w {
                    for c in 0..<3 { pixels[((oy + y) * gw + ox + x) * 3 + c] = im.pixels[(y * w + x) * 3 + c] }
                }
            }
        }
        return try Image(width: gw, height: gh, pixels: pixels)
    }
}
