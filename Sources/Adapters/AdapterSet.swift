// AdapterSet: the adapters of a whole pipeline (UNet and text encoders), loaded from files with separate
// UNet / text-encoder weights, given per-image weights with a call (`rowWeights`), fused and unfused together.
import NN
import TensorCore

public final class AdapterSet {
    /// One stack per model component present.
    public let stacks: [ModelComponent: AdapterStack]
    /// Adapter name → the file it came from (for `Lora hashes` and messages).
    public private(set) var sources: [String: String] = [:]

    /// `textEncoder2`: SDXL's second text encoder (files' `text_encoder_2.` / `lora_te2_` keys); it takes the
    /// text-encoder weight. `unetAliases`: other names of the UNet's modules that files may use (the original LDM
    /// checkpoint's, foreign name → our path; Pipeline's `StableDiffusionModel.unetLDMModuleNames`).
    public init(unet: Module?, textEncoder: Module?, textEncoder2: Module? = nil, seed: UInt64 = 0,
                unetAliases: [String: String] = [:]) {
        var s: [ModelComponent: AdapterStack] = [:]
        if let unet { s[.unet] = AdapterStack(root: unet, component: .unet, seed: seed, aliases: unetAliases) }
        if let textEncoder { s[.textEncoder] = AdapterStack(root: textEncoder, component: .textEncoder, seed: seed &+ 1) }
        if let textEncoder2 { s[.textEncoder2] = AdapterStack(root: textEncoder2, component: .textEncoder2, seed: seed &+ 2) }
        stacks = s
    }

    /// Loaded adapter names, in load order.
    public var names: [String] {
        var seen: [String] = []
        for c in ModelComponent.allCases { for n in stacks[c]?.adapterNames ?? [] where !seen.contains(n) { seen.append(n) } }
        return seen
    }

    /// Matches `file` against the models (an error when nothing matches or a shape does not fit; the base
    /// is then unchanged) and loads it as `name` with its UNet and text-encoder weights.
    @discardableResult
    public func load(_ file: LoRAFile, name: String, unetWeight: Float = 1, textEncoderWeight: Float = 1) throws -> KeyAccounting {
        guard !names.contains(name) else { throw AdaptersError.duplicateAdapter(name) }
        let resolved = try file.resolve(against: stacks.values.map(\.index))
        var loaded: [AdapterStack] = []
        do {
            for (c, stack) in stacks where resolved.modules.contains(where: { $0.component == c }) {
                try stack.load(resolved.modules, name: name, weight: c == .unet ? unetWeight : textEncoderWeight)
                loaded.append(stack)
            }
        } catch {
            for stack in loaded { try? stack.remove(name) }
            throw error
        }
        sources[name] = file.path
        return resolved.accounting
    }

    /// Sets the weights of adapter `name` (nil leaves a component's weight as it is).
    public func setWeight(_ name: String, unet: Float?, textEncoder: Float?) throws {
        try forEachStack(holding: name) { stack in
            if let w = stack.component == .unet ? unet : textEncoder { try stack.setWeight(w, for: name) }
        }
    }

    public func setEnabled(_ enabled: Bool, for name: String) throws {
        try forEachStack(holding: name) { try $0.setEnabled(enabled, for: name) }
    }

    public func remove(_ name: String) throws {
        try forEachStack(holding: name) { try $0.remove(name) }
        sources[name] = nil
    }

    /// Per-image weights for one batch of calls into these models: `perImage[i]` maps adapter names to image
    /// i's weights (absent = 0), the batch holds `copies` groups of the images; every adapter of the set is
    /// governed (one absent from every image is off for the batch). Pass the value with the call:
    /// `try set.rowWeights(perImage, copies: 2).apply { try unet(…) }`; the layers are not changed.
    public func rowWeights(_ perImage: [[String: Float]], copies: Int = 1) -> AdapterRowWeights {
        AdapterRowWeights(perImage: perImage, copies: copies, names: names)
    }

    /// Bakes every enabled adapter into the base weights of both models.
    public func fuse() throws {
        // Check every stack first so a refusal leaves both models unchanged.
        var done: [AdapterStack] = []
        do {
            for stack in stacks.values { try stack.fuse(); done.append(stack) }
        } catch {
            for stack in done { stack.unfuse() }
            throw error
        }
    }

    public func unfuse() { for stack in stacks.values { stack.unfuse() } }

    /// Key accounting of a file against these models, without loading it.
    public func accounting(for file: LoRAFile) throws -> KeyAccounting {
        try file.resolve(against: stacks.values.map(\.index)).accounting
    }

    private func forEachStack(holding name: String, _ body: (AdapterStack) throws -> Void) throws {
        let holding = stacks.values.filter { $0.adapterNames.contains(name) }
        guard !holding.isEmpty else { throw AdaptersError.unknownAdapter(name) }
        for stack in holding { try body(stack) }
    }
}
