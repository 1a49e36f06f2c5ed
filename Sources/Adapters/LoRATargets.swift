// Which layers get adapters, and how foreign module names map onto ours.
//
// Targets are module-name patterns matched against a module's key path: a pattern matches the path itself
// or any path that ends in "." + pattern (`to_out.0` matches `…attn1.to_out.0`), as PEFT's
// `target_modules` does. Foreign names are translated by exact lookup in a table built from our own
// module paths: kohya writes `lora_unet_` + path with "." → "_" (sd-scripts `networks/lora.py`), so the
// table holds every path both dotted and underscored (habit 3 of STYLE.md).
import NN

/// The model a set of adapter tensors belongs to.
public enum ModelComponent: String, Sendable, CaseIterable {
    case unet
    case textEncoder = "text_encoder"
    case textEncoder2 = "text_encoder_2"

    /// The key prefix kohya / A1111 files use.
    public var kohyaPrefix: String {
        switch self {
        case .unet: return "lora_unet_"
        case .textEncoder: return "lora_te_"
        case .textEncoder2: return "lora_te2_"
        }
    }

    /// The key prefix diffusers files use (`unet.`, `text_encoder.`).
    public var diffusersPrefix: String { rawValue + "." }
}

/// Module-name patterns selecting the layers that get adapters.
public struct LoRATargets: Equatable, Sendable {
    public var patterns: [String]

    public init(_ patterns: [String]) { self.patterns = patterns }

    /// UNet attention projections (the default of diffusers' DreamBooth LoRA and kohya's attention-only LoRA).
    public static let unetAttention = LoRATargets(["to_q", "to_k", "to_v", "to_out.0"])
    /// Transformer projections and feed-forward layers.
    public static let unetTransformerExtras = LoRATargets(["proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"])
    /// ResNet convolutions and time projections (LoCon).
    public static let unetResnet = LoRATargets(["conv1", "conv2", "conv_shortcut", "time_emb_proj"])
    /// Down- and upsampler convolutions.
    public static let unetSamplers = LoRATargets(["downsamplers.0.conv", "upsamplers.0.conv"])
    /// CLIP text-encoder attention and MLP layers.
    public static let textEncoder = LoRATargets(["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])

    /// The union of several target sets, in order, without repeats.
    public static func + (a: LoRATargets, b: LoRATargets) -> LoRATargets {
        LoRATargets(a.patterns + b.patterns.filter { !a.patterns.contains($0) })
    }

    /// Whether a module key path is a target.
    public func matches(_ path: String) -> Bool {
        patterns.contains { path == $0 || path.hasSuffix("." + $0) }
    }
}

/// The adaptable layers (Linear and Conv2d) of one model component by key path, with their weight shapes
/// in checkpoint layout, and the lookup table from every accepted spelling of a name to our path.
public struct ModuleIndex: Sendable {
    public let component: ModelComponent
    /// Key path → base weight shape ([out, in] or [out, in, k, k]).
    public let shapes: [String: [Int]]
    private let lookup: [String: String]
    /// The other names given at creation (foreign module name → our path).
    public let aliases: [String: String]

    /// From key paths and checkpoint weight shapes, and other names of those paths (`aliases`: foreign module
    /// name → our path, e.g. the original LDM checkpoint's `input_blocks.4.1.transformer_blocks.0.attn1.to_q`),
    /// each accepted dotted and kohya-underscored.
    public init(component: ModelComponent, shapes: [String: [Int]], aliases: [String: String] = [:]) {
        self.component = component
        self.shapes = shapes
        var table: [String: String] = [:]
        for path in shapes.keys {
            var spellings = [path]
            if component != .unet {   // transformers 5 drops `text_model.`; real checkpoints and adapters keep it
                spellings.append(path.hasPrefix("text_model.") ? String(path.dropFirst(11)) : "text_model." + path)
            }
            for s in spellings {
                table[s] = path
                table[s.replacingOccurrences(of: ".", with: "_")] = path
            }
        }
        for (alias, path) in aliases where shapes[path] != nil {
            for s in [alias, alias.replacingOccurrences(of: ".", with: "_")] where table[s] == nil { table[s] = path }
        }
        self.aliases = aliases
        lookup = table
    }

    /// The Linear and Conv2d layers of a module tree.
    public init(component: ModelComponent, root: Module, aliases: [String: String] = [:]) {
        var shapes: [String: [Int]] = [:]
        for (path, m) in root.namedModules() {
            if let l = m as? Linear { shapes[path] = [l.outFeatures, l.inFeatures] }
            if let c = m as? Conv2d { shapes[path] = [c.outChannels, c.inChannels, c.kernelSize, c.kernelSize] }
        }
        self.init(component: component, shapes: shapes, aliases: aliases)
    }

    /// The layers of a state dict given by its tensor shapes: every `<path>.weight` of rank 2 or 4.
    public init(component: ModelComponent, stateDictShapes: [String: [Int]], aliases: [String: String] = [:]) {
        var shapes: [String: [Int]] = [:]
        for (key, shape) in stateDictShapes where key.hasSuffix(".weight") && (shape.count == 2 || shape.count == 4) {
            shapes[String(key.dropLast(7))] = shape
        }
        self.init(component: component, shapes: shapes, aliases: aliases)
    }

    /// Our key path for a module name as a file spells it (dotted or kohya-underscored), or nil.
    public func resolve(_ name: String) -> String? { lookup[name] }

    /// The name adapter files use for one of our paths (text encoders keep the `text_model.` prefix).
    public func fileName(_ path: String) -> String {
        component != .unet && !path.hasPrefix("text_model.") ? "text_model." + path : path
    }
}
