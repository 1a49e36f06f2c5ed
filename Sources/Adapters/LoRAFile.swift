// Reading LoRA files of every common convention into one neutral form: per module, the down and up
// tensors in checkpoint layout, the alpha, and the tensor names they came from.
//
// Conventions read (suffix variants kept in one table, as sd.cpp `name_conversion.cpp` does):
//   kohya / A1111   lora_unet_<path with . → _>.lora_down.weight [r, in(, k, k)], .lora_up.weight
//                   [out, r(, 1, 1)], .alpha (scalar); text encoder lora_te_… (SDXL: lora_te1_/lora_te2_)
//   PEFT / diffusers unet.<path>.lora_A.weight [r, in], .lora_B.weight [out, r]; text_encoder.<path>…;
//                   α = r unless `__metadata__["lora_adapter_metadata"]` carries `unet.lora_alpha`
//                   (diffusers `loaders/lora_base.py`, `_pack_dict_with_prefix`)
//   older diffusers  <path>.lora.down/up.weight, text_encoder.<path>.lora_linear_layer.down/up.weight,
//                   attention processors `…attn1.processor.to_q_lora.down.weight`
//                   (diffusers `loaders/lora_conversion_utils.py`)
import Foundation
import SafeTensors
import TensorCore

/// The key convention of a LoRA file.
public enum LoRAFormat: String, Sendable, CaseIterable {
    case kohya
    case peft = "diffusers"
    case diffusersLegacy = "diffusers-legacy"
}

/// One module of an adapter file as it stores it (checkpoint layout): a LoRA pair (`down`, `up`), or the
/// factors of another kind (`factors`; `down` and `up` are then empty).
public struct LoRAModuleWeights: Sendable {
    public var component: ModelComponent
    /// The module name as the file spells it (dotted path or kohya-underscored).
    public var name: String
    public var down: Tensor        // [r, in] or [r, in, k, k]
    public var up: Tensor          // [out, r] or [out, r, 1, 1]
    /// α as stored (kohya `.alpha`, PEFT metadata); nil means α = r.
    public var alpha: Float?
    /// The tensor names this module was read from.
    public var keys: [String]
    /// A module of a kind other than LoRA (LoHa, LoKr), nil for a LoRA pair.
    public private(set) var otherKind: (any AdapterFactors)?

    public var rank: Int { otherKind?.rank ?? down.shape.first ?? 0 }
    public var effectiveAlpha: Float { alpha ?? Float(rank) }
    public var kind: AdapterKind { otherKind.map { type(of: $0).kind } ?? .lora }
    /// The module's tensors as its kind.
    public var factors: any AdapterFactors { otherKind ?? LoRAFactors(down: down, up: up, alpha: alpha) }

    public init(component: ModelComponent, name: String, down: Tensor, up: Tensor, alpha: Float?, keys: [String] = []) {
        self.component = component
        self.name = name
        self.down = down
        self.up = up
        self.alpha = alpha
        self.keys = keys
    }

    /// A module of any kind (a `LoRAFactors` gives the plain LoRA pair).
    public init(component: ModelComponent, name: String, factors: any AdapterFactors, keys: [String] = []) {
        if let lora = factors as? LoRAFactors {
            self.init(component: component, name: name, down: lora.down, up: lora.up, alpha: lora.alpha, keys: keys)
        } else {
            self.init(component: component, name: name, down: Tensor(zeros: [0]), up: Tensor(zeros: [0]), alpha: factors.alpha, keys: keys)
            otherKind = factors
        }
    }

    /// Why the module does not fit a base weight of checkpoint shape `base`, or nil.
    public func misfit(base: [Int]) -> String? { factors.misfit(base: base) }
}

/// A LoRA file read into modules.
public struct LoRAFile: Sendable {
    /// Where it came from (for messages).
    public var path: String
    public var format: LoRAFormat
    public var modules: [LoRAModuleWeights]
    /// Tensors that belong to no LoRA pair of a convention we read.
    public var unknownKeys: [String]
    public var metadata: [String: String]

    /// Reads and parses a safetensors file.
    public init(contentsOf path: String) throws {
        let file = try SafeTensorsFile(path: path)
        try self.init(tensors: file.loadAll(), metadata: file.metadata, path: path)
    }

    /// Parses named tensors (and safetensors metadata).
    public init(tensors: [String: Tensor], metadata: [String: String] = [:], path: String = "<memory>") throws {
        self.path = path
        self.metadata = metadata
        var parts: [String: (component: ModelComponent, down: (String, Tensor)?, up: (String, Tensor)?, alpha: (String, Tensor)?,
                             factors: [String: (String, Tensor)], magnitude: (String, Tensor)?)] = [:]
        var unknown: [String] = []
        var formats = Set<LoRAFormat>()
        for key in tensors.keys.sorted() {
            guard let parsed = LoRAKey(key) else { unknown.append(key); continue }
            formats.insert(parsed.format)
            let id = parsed.component.rawValue + ":" + parsed.module
            var entry = parts[id] ?? (parsed.component, nil, nil, nil, [:], nil)
            switch parsed.role {
            case .down: entry.down = (key, tensors[key]!)
            case .up: entry.up = (key, tensors[key]!)
            case .alpha: entry.alpha = (key, tensors[key]!)
            case .factor(let suffix): entry.factors[suffix] = (key, tensors[key]!)
            case .magnitude: entry.magnitude = (key, tensors[key]!)
            }
            parts[id] = entry
        }
        guard let format = [LoRAFormat.kohya, .peft, .diffusersLegacy].first(where: formats.contains) else {
            throw AdaptersError.unknownFormat(file: path, sampleKeys: unknown)
        }
        let peftAlphas = PEFTMetadata(metadata["lora_adapter_metadata"])
        var modules: [LoRAModuleWeights] = []
        for (id, entry) in parts.sorted(by: { $0.key < $1.key }) {
            let name = String(id.split(separator: ":", maxSplits: 1)[1])
            if !entry.factors.isEmpty {
                modules.append(try Self.otherKindModule(file: path, name: name, component: entry.component, factors: entry.factors,
                                                        lora: [entry.down, entry.up].compactMap { $0?.0 }, alpha: entry.alpha))
                continue
            }
            guard let down = entry.down, let up = entry.up else {
                if entry.down == nil && entry.up == nil, entry.magnitude == nil, let a = entry.alpha { unknown.append(a.0); continue }
                if entry.down == nil && entry.up == nil, let m = entry.magnitude {
                    throw AdaptersError.incompleteModule(file: path, module: name, reason: "DoRA magnitude '\(m.0)' without a LoRA pair")
                }
                throw AdaptersError.incompleteModule(file: path, module: name,
                                                     reason: entry.down == nil ? "up tensor without a down tensor" : "down tensor without an up tensor")
            }
            var alpha: Float? = peftAlphas.alpha(component: entry.component, module: name)
            if let a = entry.alpha {
                guard a.1.count == 1 else {
                    throw AdaptersError.incompleteModule(file: path, module: name, reason: "alpha '\(a.0)' has shape \(a.1.shape)")
                }
                alpha = a.1.scalars[0]
            }
            let keys = [down.0, up.0] + (entry.alpha.map { [$0.0] } ?? [])
            if let m = entry.magnitude {
                let dora = DoRAFactors(lora: LoRAFactors(down: down.1, up: up.1, alpha: alpha), magnitude: m.1)
                modules.append(LoRAModuleWeights(component: entry.component, name: name, factors: dora, keys: keys + [m.0]))
                continue
            }
            modules.append(LoRAModuleWeights(component: entry.component, name: name, down: down.1, up: up.1, alpha: alpha, keys: keys))
        }
        self.format = format
        self.modules = modules
        self.unknownKeys = unknown
    }

    /// A LoHa / LoKr module from its tensors by suffix (every suffix of one kind; no LoRA pair beside them).
    static func otherKindModule(file: String, name: String, component: ModelComponent, factors: [String: (String, Tensor)],
                                lora: [String], alpha: (String, Tensor)?) throws -> LoRAModuleWeights {
        let suffixes = Set(factors.keys)
        guard lora.isEmpty, let type = AdapterKind.types.first(where: { suffixes.isSubset(of: $0.suffixes) }) else {
            throw AdaptersError.incompleteModule(file: file, module: name,
                                                 reason: "tensors of several adapter kinds: \((lora + factors.values.map(\.0)).sorted().joined(separator: ", "))")
        }
        if let a = alpha, a.1.count != 1 {
            throw AdaptersError.incompleteModule(file: file, module: name, reason: "alpha '\(a.0)' has shape \(a.1.shape)")
        }
        do {
            let made = try type.init(tensors: factors.mapValues(\.1), alpha: alpha.map { $0.1.scalars[0] })
            return LoRAModuleWeights(component: component, name: name, factors: made,
                                     keys: factors.values.map(\.0).sorted() + (alpha.map { [$0.0] } ?? []))
        } catch let error as AdapterFactorsError {
            throw AdaptersError.incompleteModule(file: file, module: name, reason: error.description)
        }
    }

    /// How the file names UNet modules: `diffusers` (`down_blocks_1_attentions_0_…`), `ldm` (the original
    /// checkpoint's `input_blocks_4_1_…`, `middle_block_…`, `output_blocks_…`), `mixed`, or nil without UNet modules.
    public var unetNaming: String? {
        let names = modules.filter { $0.component == .unet }.map(\.name)
        guard !names.isEmpty else { return nil }
        let ldmPrefixes = ["input_blocks", "middle_block", "output_blocks", "time_embed", "out_2", "out.2", "label_emb"]
        let ldm = names.filter { n in ldmPrefixes.contains { n.hasPrefix($0) } }.count
        return ldm == 0 ? "diffusers" : ldm == names.count ? "ldm" : "mixed"
    }

    /// The kinds of module the file holds, in `AdapterKind` order.
    public var kinds: [AdapterKind] { AdapterKind.allCases.filter { k in modules.contains { $0.kind == k } } }

    /// The rank shared by every module, or nil when ranks differ.
    public var rank: Int? { Set(modules.map(\.rank)).count == 1 ? modules.first?.rank : nil }
    /// The alpha shared by every module, or nil when alphas differ.
    public var alpha: Float? { Set(modules.map(\.effectiveAlpha)).count == 1 ? modules.first?.effectiveAlpha : nil }
    /// The trigger phrase recorded by the trainer (`modelspec.trigger_phrase`), if any.
    public var triggerPhrase: String? {
        metadata["modelspec.trigger_phrase"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
    }
}

/// One tensor name split into component, module name and role.
struct LoRAKey {
    enum Role: Equatable { case down, up, alpha, magnitude, factor(String) }
    let component: ModelComponent
    let module: String
    let role: Role
    let format: LoRAFormat

    /// Suffixes of every convention, longest first: (suffix, role, format).
    private static let suffixes: [(String, Role, LoRAFormat)] = [
        (".lora_linear_layer.down.weight", .down, .diffusersLegacy), (".lora_linear_layer.up.weight", .up, .diffusersLegacy),
        (".lora_down.weight", .down, .kohya), (".lora_up.weight", .up, .kohya),
        (".lora.down.weight", .down, .diffusersLegacy), (".lora.up.weight", .up, .diffusersLegacy),
        ("_lora.down.weight", .down, .diffusersLegacy), ("_lora.up.weight", .up, .diffusersLegacy),
        (".lora_A.weight", .down, .peft), (".lora_B.weight", .up, .peft),
        (".lora_magnitude_vector.weight", .magnitude, .peft), (".lora_magnitude_vector", .magnitude, .peft),
        (".dora_scale", .magnitude, .kohya),
        (".alpha", .alpha, .kohya),
    ] + AdapterKind.types.flatMap { $0.suffixes }.sorted { $0.count > $1.count }.map { ("." + $0, .factor($0), .kohya) }

    /// Old attention-processor names (`to_q_lora`) → module names, for the UNet and the text encoder.
    private static let processorNames: [String: (unet: String, textEncoder: String)] = [
        "to_q": ("to_q", "q_proj"), "to_k": ("to_k", "k_proj"), "to_v": ("to_v", "v_proj"), "to_out": ("to_out.0", "out_proj"),
    ]

    init?(_ key: String) {
        var rest = key
        if rest.hasPrefix("base_model.model.") { rest.removeFirst(17) }
        // A PEFT key with an adapter name (`lora_A.default.weight`) reads like the saved form.
        for part in ["lora_A", "lora_B"] {
            if let r = rest.range(of: "." + part + "."), rest.hasSuffix(".weight"),
               rest[r.upperBound...].dropLast(7).allSatisfy({ $0 != "." }) {
                rest = String(rest[..<r.lowerBound]) + "." + part + ".weight"
            }
        }
        guard let (suffix, role, suffixFormat) = Self.suffixes.first(where: { rest.hasSuffix($0.0) }) else { return nil }
        var module = String(rest.dropLast(suffix.count))
        var component = ModelComponent.unet
        var format = suffixFormat
        let kohyaPrefixes: [(String, ModelComponent)] = [
            ("lora_unet_", .unet), ("lora_te_", .textEncoder), ("lora_te1_", .textEncoder), ("lora_te2_", .textEncoder2),
        ]
        if let (prefix, c) = kohyaPrefixes.first(where: { module.hasPrefix($0.0) }) {
            module.removeFirst(prefix.count)
            component = c
            if role == .alpha || role == .magnitude { format = .kohya }
        } else {
            if role == .alpha && !module.contains(".") { return nil }
            if let c = [ModelComponent.textEncoder2, .textEncoder, .unet].first(where: { module.hasPrefix($0.diffusersPrefix) }) {
                module.removeFirst(c.diffusersPrefix.count)
                component = c
            } else if module.hasPrefix("text_model.") {
                component = .textEncoder
            }
            if role == .alpha { format = suffixFormat == .kohya ? .diffusersLegacy : format }
            if case .factor = role { format = .peft }       // peft's LoHa / LoKr keys: dotted path + LyCORIS suffix
        }
        if suffix.hasPrefix("_lora") || module.hasSuffix("_lora") {   // attention-processor form
            if module.hasSuffix("_lora") { module.removeLast(5) }
            module = module.replacingOccurrences(of: ".processor.", with: ".")
            if let dot = module.lastIndex(of: "."), let names = Self.processorNames[String(module[module.index(after: dot)...])] {
                module = String(module[..<dot]) + "." + (component == .unet ? names.unet : names.textEncoder)
            }
        }
        guard !module.isEmpty else { return nil }
        self.component = component
        self.module = module
        self.role = role
        self.format = format
    }
}

/// `lora_adapter_metadata` (PEFT `LoraConfig` fields per component, keys prefixed `unet.` / `text_encoder.`).
struct PEFTMetadata {
    private var alphas: [ModelComponent: Float] = [:]
    private var patterns: [ModelComponent: [String: Float]] = [:]

    init(_ json: String?) {
        guard let data = json?.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        for c in ModelComponent.allCases {
            if let a = object[c.diffusersPrefix + "lora_alpha"] as? NSNumber { alphas[c] = a.floatValue }
            if let p = object[c.diffusersPrefix + "alpha_pattern"] as? [String: Any] {
                patterns[c] = p.compactMapValues { ($0 as? NSNumber)?.floatValue }
            }
        }
    }

    /// The alpha PEFT would use for a module: the longest matching `alpha_pattern` entry, else `lora_alpha`.
    func alpha(component: ModelComponent, module: String) -> Float? {
        let matching = (patterns[component] ?? [:]).filter { module == $0.key || module.hasSuffix("." + $0.key) }
        return matching.max { $0.key.count < $1.key.count }?.value ?? alphas[component]
    }
}
