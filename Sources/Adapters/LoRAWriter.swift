// Writing LoRA files. The default is kohya keys + `.alpha` + `ss_*` / `modelspec.*` metadata, the one
// layout that A1111, ComfyUI, stable-diffusion.cpp, kohya and diffusers all load; `.peft` writes
// diffusers/PEFT keys with `lora_adapter_metadata` (so diffusers reads α, not α = r).
import Foundation
import SafeTensors
import TensorCore

/// Facts about an adapter recorded in its file's metadata.
public struct LoRAFileInfo: Sendable, Equatable {
    /// `sd_v1`, `sd_v2`, … (kohya `ss_base_model_version`).
    public var baseModelVersion: String?
    /// The word that calls up the subject (`modelspec.trigger_phrase`).
    public var triggerPhrase: String?
    /// Training steps (`ss_steps`).
    public var steps: Int?
    /// SHA-256 of the base model (`ss_new_sd_model_hash`).
    public var baseModelHash: String?
    /// Extra metadata strings written as they are.
    public var extra: [String: String]

    public init(baseModelVersion: String? = nil, triggerPhrase: String? = nil, steps: Int? = nil,
                baseModelHash: String? = nil, extra: [String: String] = [:]) {
        self.baseModelVersion = baseModelVersion
        self.triggerPhrase = triggerPhrase
        self.steps = steps
        self.baseModelHash = baseModelHash
        self.extra = extra
    }
}

public enum LoRAWriter {
    /// The safetensors tensors and metadata of `modules` in `format`. Module names are dotted key paths
    /// (text encoders with `text_model.`); kohya-underscored names can only be written as kohya. `precision`:
    /// F32, F16 or BF16 for every tensor (kohya's --save_precision converts the `.alpha` scalars too).
    public static func encode(_ modules: [LoRAModuleWeights], format: LoRAFormat, info: LoRAFileInfo = LoRAFileInfo(),
                              carrying metadata: [String: String] = [:], precision: DType = .f32) throws -> SafeTensorsWriter {
        guard !modules.isEmpty else { throw AdaptersError.invalidRequest("nothing to write: the adapter has no modules") }
        var meta = metadata.filter { !$0.key.hasPrefix("ss_network") && $0.key != "lora_adapter_metadata" }
        meta["format"] = "pt"
        let ranks = modules.map(\.rank), alphas = modules.map(\.effectiveAlpha)
        if let v = info.baseModelVersion { meta["ss_base_model_version"] = v }
        if let t = info.triggerPhrase { meta["modelspec.trigger_phrase"] = t }
        if let s = info.steps { meta["ss_steps"] = String(s) }
        if let h = info.baseModelHash { meta["ss_new_sd_model_hash"] = h }
        meta.merge(info.extra) { $1 }
        var writer = SafeTensorsWriter()
        switch format {
        case .kohya:
            let kinds = AdapterKind.allCases.filter { k in modules.contains { $0.kind == k } }
            meta["ss_network_module"] = kinds == [.lora] ? "networks.lora" : "lycoris.kohya"
            meta["ss_network_dim"] = String(ranks.max()!)
            meta["ss_network_alpha"] = number(alphas.max()!)
            let convs = modules.filter { $0.down.rank == 4 && ($0.down.shape[2] > 1 || $0.down.shape[3] > 1) }
            if kinds.count == 1, let kind = kinds.first, kind != .lora {
                meta["ss_network_args"] = #"{"algo": "\#(kind.rawValue)"}"#
            } else if let c = convs.first {
                meta["ss_network_args"] = #"{"conv_dim": "\#(c.rank)", "conv_alpha": "\#(number(c.effectiveAlpha))"}"#
            }
            // SDXL files (a second text encoder) name the first one lora_te1_, as sd-scripts' sdxl networks do.
            let sdxl = modules.contains { $0.component == .textEncoder2 }
            for m in modules {
                let prefix = sdxl && m.component == .textEncoder ? "lora_te1_" : m.component.kohyaPrefix
                // kohya names text-encoder modules from `text_model.` (transformers 5's diffusers files drop it)
                let kohyaTextModel = m.component != .unet && m.name.hasPrefix("encoder.")
                let key = prefix + (kohyaTextModel ? "text_model." + m.name : m.name).replacingOccurrences(of: ".", with: "_")
                for (suffix, tensor) in m.factors.fileTensors { try writer.add(key + "." + suffix, tensor, as: precision) }
                try writer.add(key + ".alpha", Tensor(scalar: m.effectiveAlpha), as: precision)
            }
        case .peft, .diffusersLegacy:
            var config: [String: Any] = [:]
            for component in ModelComponent.allCases {
                let mine = modules.filter { $0.component == component }
                guard let first = mine.first else { continue }
                let p = component.diffusersPrefix
                for m in mine where m.kind != .lora {
                    throw AdaptersError.invalidRequest("'\(m.name)' is a \(m.kind.rawValue) module: diffusers keys hold LoRA pairs only; "
                        + "write it with kohya / LyCORIS keys (--to kohya) or turn it into a LoRA first (lora resize --rank R)")
                }
                for m in mine where m.name.contains("_") && !m.name.contains(".") {
                    throw AdaptersError.invalidRequest("'\(m.name)' is a kohya name; resolve it against a model before writing diffusers keys")
                }
                config[p + "r"] = first.rank
                config[p + "lora_alpha"] = Double(first.effectiveAlpha)
                config[p + "target_modules"] = Array(Set(mine.map { String($0.name.split(separator: ".").last!) })).sorted()
                config[p + "rank_pattern"] = Dictionary(uniqueKeysWithValues: mine.filter { $0.rank != first.rank }.map { ($0.name, $0.rank) })
                config[p + "alpha_pattern"] = Dictionary(uniqueKeysWithValues:
                    mine.filter { $0.effectiveAlpha != first.effectiveAlpha }.map { ($0.name, Double($0.effectiveAlpha)) })
                for m in mine {
                    try writer.add(p + m.name + ".lora_A.weight", m.down, as: precision)
                    try writer.add(p + m.name + ".lora_B.weight", m.up, as: precision)
                }
            }
            let json = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
            meta["lora_adapter_metadata"] = String(decoding: json, as: UTF8.self)
        }
        writer.metadata = meta
        return writer
    }

    /// Writes `modules` to `path` atomically (temporary file + rename).
    public static func write(_ modules: [LoRAModuleWeights], to path: String, format: LoRAFormat = .kohya,
                             info: LoRAFileInfo = LoRAFileInfo(), carrying metadata: [String: String] = [:],
                             precision: DType = .f32) throws {
        try encode(modules, format: format, info: info, carrying: metadata, precision: precision).write(to: path)
    }

    /// `4` for whole numbers, `0.5` otherwise (how kohya writes dims and alphas).
    static func number(_ x: Float) -> String {
        x == x.rounded() && abs(x) < 1e9 ? String(Int(x)) : String(x)
    }
}
