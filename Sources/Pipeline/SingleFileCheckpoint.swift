// SingleFileCheckpoint: a Stable Diffusion 1.x / 2.x checkpoint in the original (CompVis LDM) layout, one
// `.safetensors` file as AUTOMATIC1111, ComfyUI, kohya's scripts and stable-diffusion.cpp load it:
//
//     model.diffusion_model.*               UNet (input_blocks / middle_block / output_blocks)
//     first_stage_model.*                   VAE (encoder.down.N.block.M, mid.attn_1, …)
//     cond_stage_model.transformer.*        SD-1.x: CLIP ViT-L/14 text model (transformers names, text_model.)
//     cond_stage_model.model.*              SD-2.x: OpenCLIP ViT-H text tower (transformer.resblocks.N with fused
//                                           attn.in_proj_weight, positional_embedding, ln_final, text_projection)
//
// The architecture is read from key names and shapes (levels, channels, layers per block, transformer depth,
// context width, linear or 1×1 proj_in); heads are what the original configs say (SD-1: 8; SD-2: 64 channels per
// head), unless a `<name>.yaml` beside the file gives `num_heads` / `num_head_channels`. SD-2 reads the text
// tower's penultimate layer, so its last resblock is not loaded. Keys that real files carry and no model uses
// (EMA bookkeeping, the DDPM schedule buffers, position_ids, logit_scale, text_projection) are skipped by name;
// any other key fails loading and is named. Port of the mapping in diffusers'
// scripts/convert_diffusers_to_original_stable_diffusion.py and of A1111's model-type detection.

import CLIPText
import DiffusionModels
import Foundation
import NN
import SafeTensors
import Schedulers
import TensorCore

/// The model family, told by the text tower a single file carries.
public enum StableDiffusionFamily: String, Sendable {
    /// CLIP ViT-L/14 (`cond_stage_model.transformer.`), 768-wide context.
    case sd1 = "SD-1.x"
    /// OpenCLIP ViT-H (`cond_stage_model.model.`), 1024-wide context, penultimate layer.
    case sd2 = "SD-2.x"
}

public struct SingleFileCheckpoint {
    static let unetPrefix = "model.diffusion_model."
    static let vaePrefix = "first_stage_model."
    static let clipPrefix = "cond_stage_model.transformer."
    static let openCLIPPrefix = "cond_stage_model.model."

    /// Top-level keys of LatentDiffusion's state dict that no model here uses: the DDPM schedule buffers
    /// (`register_schedule` in ldm/models/diffusion/ddpm.py) and EMA bookkeeping.
    static let skippedKeys: Set<String> = [
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
        "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
        "lvlb_weights",
    ]
    static let skippedPrefixes = ["model_ema."]

    public let url: URL
    public let file: SafeTensorsFile
    public let family: StableDiffusionFamily
    public let unetConfig: UNet2DConditionConfig
    public let vaeConfig: AutoencoderKLConfig
    public let textConfig: CLIPTextConfig
    /// `<name>.yaml` beside the file, when there is one.
    public let yaml: LDMYAML?
    /// Keys by component, without the component's prefix.
    let unetKeys: [String], vaeKeys: [String], textKeys: [String]

    /// Opens `path`, accounts for every key and reads the architecture from names and shapes.
    public init(path: String) throws {
        url = URL(fileURLWithPath: path).standardizedFileURL
        let file = try SafeTensorsFile(path: path)
        self.file = file
        let yamlURL = url.deletingPathExtension().appendingPathExtension("yaml")
        let yaml = FileManager.default.fileExists(atPath: yamlURL.path) ? try LDMYAML(contentsOf: yamlURL) : nil
        self.yaml = yaml

        var unet: [String] = [], vae: [String] = [], clip: [String] = [], openCLIP: [String] = [], unknown: [String] = []
        for name in file.names {
            if name.hasPrefix(Self.unetPrefix) { unet.append(String(name.dropFirst(Self.unetPrefix.count))) }
            else if name.hasPrefix(Self.vaePrefix) { vae.append(String(name.dropFirst(Self.vaePrefix.count))) }
            else if name.hasPrefix(Self.clipPrefix) { clip.append(String(name.dropFirst(Self.clipPrefix.count))) }
            else if name.hasPrefix(Self.openCLIPPrefix) { openCLIP.append(String(name.dropFirst(Self.openCLIPPrefix.count))) }
            else if !Self.skippedKeys.contains(name) && !Self.skippedPrefixes.contains(where: name.hasPrefix) {
                unknown.append(name)
            }
        }
        let path = url.path
        func fail(_ reason: String) -> PipelineError { .invalidFile(path: path, reason: reason) }
        if file.names.contains(where: { $0.hasPrefix("conditioner.embedders.") }) {
            throw fail("an SDXL checkpoint (conditioner.embedders.*); single files of SD-1.x and SD-2.x are supported")
        }
        if unet.isEmpty {
            if file.names.contains(where: { $0.hasPrefix("encoder.") || $0.hasPrefix("decoder.") }) {
                throw fail("a VAE alone (encoder.* / decoder.*), not a whole model: give it with --vae")
            }
            throw fail("not a Stable Diffusion checkpoint in the original layout (no model.diffusion_model.* keys)")
        }
        guard unknown.isEmpty else {
            throw PipelineError.componentLoad(component: "checkpoint", path: path, underlying: StateDictError.multiple(
                unknown.sorted().map { .unusedTensor(key: $0, shape: (try? file.info($0).shape) ?? []) }))
        }
        let family: StableDiffusionFamily
        switch (clip.isEmpty, openCLIP.isEmpty) {
        case (false, true): family = .sd1; textKeys = clip
        case (true, false): family = .sd2; textKeys = openCLIP
        case (false, false): throw fail("both an SD-1.x (cond_stage_model.transformer.) and an SD-2.x (cond_stage_model.model.) text encoder")
        case (true, true): throw fail("no text encoder (cond_stage_model.*)")
        }
        if vae.isEmpty { throw fail("no VAE (first_stage_model.*); a file without one is not supported") }
        self.family = family
        unetKeys = unet
        vaeKeys = vae
        let shapes = ShapeTable(file: file)
        let textPrefix = family == .sd1 ? Self.clipPrefix : Self.openCLIPPrefix
        do {
            let inner = family == .sd1 ? Self.clipInnerPrefix(clip) : ""
            textConfig = try Self.detectText(shapes.under(textPrefix + inner), family: family)
            unetConfig = try Self.detectUNet(shapes.under(Self.unetPrefix), family: family, yaml: yaml,
                                             vPrediction: yaml?.predictionType == .vPrediction || (yaml?.predictionType == nil && family == .sd2))
            vaeConfig = try Self.detectVAE(shapes.under(Self.vaePrefix))
        } catch let error as DetectionError {
            throw fail(error.message)
        }
    }

    /// A1111's `Model` field: the file name without its extension.
    public var name: String { url.deletingPathExtension().lastPathComponent }

    /// The prediction type and where it came from: `override` (--prediction), else the yaml's
    /// `parameterization`, else SD-2.x files are v-prediction (the 2.1-768 release) and SD-1.x ε.
    public func predictionType(override: PredictionType? = nil) -> (type: PredictionType, source: String) {
        if let override {
            if let fromYAML = yaml?.predictionType, fromYAML != override {
                return (override, "from --prediction, overriding \(yaml!.url.lastPathComponent)'s \(fromYAML.rawValue)")
            }
            return (override, "from --prediction")
        }
        if let fromYAML = yaml?.predictionType { return (fromYAML, "from \(yaml!.url.lastPathComponent)") }
        return family == .sd2 ? (.vPrediction, "SD-2.x default") : (.epsilon, "SD-1.x default")
    }

    /// The original configs' scheduler (scaled-linear 0.00085–0.012, 1000 steps) as diffusers' single-file loader
    /// sets it: PNDM without PRK steps, leading spacing, steps_offset 1.
    public static func schedulerConfig(prediction: PredictionType) -> SchedulerConfig {
        SchedulerConfig(className: "PNDMScheduler", numTrainTimesteps: 1000, betaStart: 0.00085, betaEnd: 0.012,
                        betaSchedule: .scaledLinear, predictionType: prediction, timestepSpacing: .leading,
                        stepsOffset: 1, setAlphaToOne: false, skipPrkSteps: true)
    }

    // MARK: Loading

    public func loadUNet() throws -> UNet2DConditionModel {
        let model = UNet2DConditionModel(config: unetConfig)
        let layout = LDMUNetLayout(config: unetConfig)
        try component("unet") {
            try MappedLoader(file: file, prefix: Self.unetPrefix).load(model, fileKeys: unetKeys) {
                LDMKeyNames.unet($0, layout).map(TensorSource.whole)
            }
        }
        return model
    }

    public func loadVAE() throws -> AutoencoderKL {
        try component("vae") { try Self.loadVAE(file: file, prefix: Self.vaePrefix, keys: vaeKeys, config: vaeConfig) }
    }

    public func loadTextEncoder() throws -> CLIPTextModel {
        let model = try CLIPTextModel(config: textConfig)
        try component("text_encoder") {
            switch family {
            case .sd1:
                // transformers' CLIPTextModel keys, under `text_model.` in all but the oldest files.
                let inner = clipInnerPrefix
                try MappedLoader(file: file, prefix: Self.clipPrefix + inner).load(
                    model, fileKeys: textKeys.map { String($0.dropFirst(inner.count)) },
                    skipped: { $0 == "embeddings.position_ids" }
                ) { .whole($0) }
            case .sd2:
                let last = "transformer.resblocks.\(textConfig.numHiddenLayers)."
                try MappedLoader(file: file, prefix: Self.openCLIPPrefix).load(
                    model, fileKeys: textKeys,
                    skipped: { $0.hasPrefix(last) || ["text_projection", "logit_scale", "attn_mask"].contains($0) }
                ) { key in
                    switch LDMKeyNames.openCLIP(key) {
                    case .tensor(let name): return .whole(name)
                    case .fused(let name, let part): return .rows(name, part: part, parts: 3)
                    case nil: return nil
                    }
                }
            }
        }
        return model
    }

    /// A VAE in LDM layout from `file` (keys under `prefix`), architecture read from its shapes when `config` is nil.
    static func loadVAE(file: SafeTensorsFile, prefix: String, keys: [String],
                        config: AutoencoderKLConfig? = nil) throws -> AutoencoderKL {
        let config = try config ?? detectVAE(ShapeTable(file: file).under(prefix))
        let model = AutoencoderKL(config: config)
        let levels = config.blockOutChannels.count
        try MappedLoader(file: file, prefix: prefix).load(model, fileKeys: keys) {
            LDMKeyNames.vae($0, levels: levels).map(TensorSource.whole)
        }
        return model
    }

    /// `text_model.` when the SD-1 text keys have it (every key must then), else "".
    var clipInnerPrefix: String { Self.clipInnerPrefix(textKeys) }

    static func clipInnerPrefix(_ keys: [String]) -> String {
        keys.allSatisfy { $0.hasPrefix("text_model.") } ? "text_model." : ""
    }

    private func component<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as PipelineError {
            throw error
        } catch {
            throw PipelineError.componentLoad(component: name, path: url.path, underlying: error)
        }
    }
}

// MARK: - Architecture from names and shapes

struct DetectionError: Error {
    let message: String
}

/// Tensor shapes by key, read from the header only.
struct ShapeTable {
    var shapes: [String: [Int]] = [:]

    init(file: SafeTensorsFile) {
        for t in file.tensors { shapes[t.name] = t.shape }
    }

    private init(shapes: [String: [Int]]) { self.shapes = shapes }

    /// The keys under `prefix`, without it.
    func under(_ prefix: String) -> ShapeTable {
        var out: [String: [Int]] = [:]
        for (k, v) in shapes where k.hasPrefix(prefix) { out[String(k.dropFirst(prefix.count))] = v }
        return ShapeTable(shapes: out)
    }

    subscript(_ key: String) -> [Int]? { shapes[key] }

    /// The shape of `key`, which must exist with `rank` dimensions.
    func require(_ key: String, rank: Int) throws -> [Int] {
        guard let s = shapes[key] else { throw DetectionError(message: "missing tensor \(key)") }
        guard s.count == rank else { throw DetectionError(message: "\(key) has shape \(s), expected \(rank) dimensions") }
        return s
    }

    /// How many consecutive N from 0 have `pattern` with N in place of `#` present.
    func count(_ pattern: String) -> Int {
        var n = 0
        while shapes[pattern.replacingOccurrences(of: "#", with: String(n))] != nil { n += 1 }
        return n
    }
}

extension SingleFileCheckpoint {
    static func detectUNet(_ s: ShapeTable, family: StableDiffusionFamily, yaml: LDMYAML?,
                           vPrediction: Bool) throws -> UNet2DConditionConfig {
        if s["label_emb.0.0.weight"] != nil {
            throw DetectionError(message: "the UNet has a class/size embedding (label_emb: SDXL or unCLIP), not supported")
        }
        let convIn = try s.require("input_blocks.0.0.weight", rank: 4)
        let convOut = try s.require("out.2.weight", rank: 4)
        // input_blocks: per level, its resnets (with or without a spatial transformer), then a downsampler.
        struct Level { var channels = 0, resnets = 0, depth = 0, attention = false }
        var levels: [Level] = [], current = Level()
        var context: Int?, linear: Bool?
        var index = 1
        while true {
            if s["input_blocks.\(index).0.op.weight"] != nil {
                levels.append(current)
                current = Level()
            } else if let w = s["input_blocks.\(index).0.out_layers.3.weight"] {
                current.channels = w[0]
                current.resnets += 1
                let depth = s.count("input_blocks.\(index).1.transformer_blocks.#.norm1.weight")
                if depth > 0 {
                    current.attention = true
                    current.depth = depth
                    context = try context ?? s.require("input_blocks.\(index).1.transformer_blocks.0.attn2.to_k.weight", rank: 2)[1]
                    if linear == nil, let proj = s["input_blocks.\(index).1.proj_in.weight"] { linear = proj.count == 2 }
                }
            } else {
                break
            }
            index += 1
        }
        levels.append(current)
        guard levels.allSatisfy({ $0.resnets > 0 }) else { throw DetectionError(message: "a UNet level without resnets") }
        guard let context else { throw DetectionError(message: "no cross-attention in the UNet") }
        guard s["middle_block.1.proj_in.weight"] != nil else { throw DetectionError(message: "no middle-block attention") }
        let channels = levels.map(\.channels)
        let heads: [Int]
        if let n = yaml?.numHeads, n > 0 {
            heads = Array(repeating: n, count: levels.count)
        } else {
            let perHead = yaml?.numHeadChannels.flatMap { $0 > 0 ? $0 : nil } ?? (family == .sd2 ? 64 : nil)
            heads = channels.map { c in perHead.map { c / $0 } ?? 8 }
        }
        for (c, h) in zip(channels, heads) where h < 1 || c % h != 0 || c % 32 != 0 {
            throw DetectionError(message: "\(c) channels do not divide into \(h) heads and 32 groups")
        }
        return UNet2DConditionConfig(
            sampleSize: family == .sd2 && vPrediction ? 96 : 64, inChannels: convIn[1], outChannels: convOut[0],
            downBlockTypes: levels.map { $0.attention ? .crossAttnDownBlock2D : .downBlock2D },
            upBlockTypes: levels.reversed().map { $0.attention ? .crossAttnUpBlock2D : .upBlock2D },
            blockOutChannels: channels, layersPerBlock: levels.map(\.resnets), normNumGroups: 32,
            crossAttentionDim: Array(repeating: context, count: levels.count),
            transformerLayersPerBlock: levels.map { max($0.depth, 1) }, attentionHeads: heads,
            useLinearProjection: linear ?? false, upcastAttention: family == .sd2)
    }

    static func detectVAE(_ s: ShapeTable) throws -> AutoencoderKLConfig {
        let levels = s.count("encoder.down.#.block.0.conv1.weight")
        guard levels > 0 else { throw DetectionError(message: "no VAE encoder blocks (encoder.down.0.block.0.*)") }
        let channels = try (0..<levels).map { try s.require("encoder.down.\($0).block.0.conv2.weight", rank: 4)[0] }
        let latent = try s.require("decoder.conv_in.weight", rank: 4)[1]
        guard channels.allSatisfy({ $0 % 32 == 0 }) else {
            throw DetectionError(message: "VAE channels \(channels) do not divide into 32 groups")
        }
        return AutoencoderKLConfig(
            inChannels: try s.require("encoder.conv_in.weight", rank: 4)[1],
            outChannels: try s.require("decoder.conv_out.weight", rank: 4)[0], blockOutChannels: channels,
            layersPerBlock: s.count("encoder.down.0.block.#.conv1.weight"), latentChannels: latent, normNumGroups: 32,
            sampleSize: 512, useQuantConv: s["quant_conv.weight"] != nil, usePostQuantConv: s["post_quant_conv.weight"] != nil,
            midBlockAddAttention: s["encoder.mid.attn_1.q.weight"] != nil)
    }

    static func detectText(_ s: ShapeTable, family: StableDiffusionFamily) throws -> CLIPTextConfig {
        let (tokens, positions, layers, fc1): ([Int], [Int], Int, [Int])
        switch family {
        case .sd1:
            tokens = try s.require("embeddings.token_embedding.weight", rank: 2)
            positions = try s.require("embeddings.position_embedding.weight", rank: 2)
            layers = s.count("encoder.layers.#.layer_norm1.weight")
            fc1 = try s.require("encoder.layers.0.mlp.fc1.weight", rank: 2)
        case .sd2:
            tokens = try s.require("token_embedding.weight", rank: 2)
            positions = try s.require("positional_embedding", rank: 2)
            // The last resblock is not run (SD-2 conditions on the penultimate layer).
            layers = s.count("transformer.resblocks.#.ln_1.weight") - 1
            fc1 = try s.require("transformer.resblocks.0.mlp.c_fc.weight", rank: 2)
        }
        let width = tokens[1]
        guard width % 64 == 0, layers > 0 else {
            throw DetectionError(message: "text encoder width \(width) is not a multiple of 64 or has no layers")
        }
        // CLIP ViT-L/14 and OpenCLIP ViT-H both have 64 channels per head; SD-1's config keeps the legacy eos id 2.
        return CLIPTextConfig(vocabSize: tokens[0], hiddenSize: width, intermediateSize: fc1[0], numHiddenLayers: layers,
                              numAttentionHeads: width / 64, maxPositionEmbeddings: positions[0],
                              hiddenAct: family == .sd1 ? .quickGELU : .gelu, eosTokenID: 2)
    }
}
