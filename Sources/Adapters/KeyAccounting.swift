// Matching an adapter file against a model: every tensor is either applied to a module of ours or listed
// as unmatched, and the base modules of the adapter's kind that get nothing are listed too (sd.cpp keeps
// `applied_lora_tensors` for the same purpose). Nothing of the model is touched here.

/// What an adapter file matched in a model.
public struct KeyAccounting: Sendable, Equatable {
    public var file: String
    /// Tensor names applied to a module.
    public var matched: [String]
    /// Tensor names that name no module of the model (or follow no LoRA convention).
    public var unmatched: [String]
    /// Base modules of the kinds the adapter targets (e.g. every `to_q`) that have no adapter, by component.
    public var modulesWithoutAdapter: [String]
    /// Number of base modules that received an adapter.
    public var matchedModules: Int

    /// `matched 128 tensors (64 modules); unmatched 0; 0 target modules without adapter`, then the lists.
    public var report: String {
        var lines = ["\(file): matched \(matched.count) tensors (\(matchedModules) modules); unmatched \(unmatched.count); "
                     + "\(modulesWithoutAdapter.count) base modules of the targeted kinds without adapter"]
        lines += unmatched.prefix(20).map { "  unmatched: \($0)" }
        if unmatched.count > 20 { lines.append("  … and \(unmatched.count - 20) more unmatched") }
        lines += modulesWithoutAdapter.prefix(20).map { "  no adapter: \($0)" }
        if modulesWithoutAdapter.count > 20 { lines.append("  … and \(modulesWithoutAdapter.count - 20) more without adapter") }
        return lines.joined(separator: "\n")
    }
}

/// One module of an adapter file placed on one of our layers.
public struct ResolvedModule: Sendable {
    public var component: ModelComponent
    /// Our key path.
    public var path: String
    public var weights: LoRAModuleWeights

    public init(component: ModelComponent, path: String, weights: LoRAModuleWeights) {
        self.component = component
        self.path = path
        self.weights = weights
    }
}

/// An adapter file matched against a model's module indexes.
public struct ResolvedLoRA: Sendable {
    public var file: LoRAFile
    public var modules: [ResolvedModule]
    public var accounting: KeyAccounting
}

/// Every pattern we know as a target, to name the kinds of layer an adapter covers.
private let knownTargets = LoRATargets.unetAttention + .unetTransformerExtras + .unetResnet + .unetSamplers + .textEncoder

extension LoRAFile {
    /// Places every module on a layer of the indexed models. Throws when nothing matches, when every module
    /// of one model component misses, or when a module's shapes do not fit its layer (naming keys and
    /// shapes); other unmatched tensors are listed, not fatal.
    public func resolve(against indexes: [ModuleIndex]) throws -> ResolvedLoRA {
        var resolved: [ResolvedModule] = []
        var unmatched = unknownKeys
        for m in modules {
            guard let index = indexes.first(where: { $0.component == m.component }), let path = index.resolve(m.name),
                  let base = index.shapes[path] else {
                unmatched += m.keys
                continue
            }
            if let reason = m.misfit(base: base) {
                guard m.kind == .lora else {
                    throw AdaptersError.incompleteModule(file: self.path, module: path,
                                                         reason: "\(m.kind.rawValue) does not fit the model: \(reason); is the adapter for another architecture?")
                }
                throw AdaptersError.shapeMismatch(file: self.path, module: path, keys: Array(m.keys.prefix(2)),
                                                  base: base, down: m.down.shape, up: m.up.shape)
            }
            guard m.effectiveAlpha.isFinite else {
                throw AdaptersError.incompleteModule(file: self.path, module: path, reason: "alpha is \(m.effectiveAlpha)")
            }
            resolved.append(ResolvedModule(component: m.component, path: path, weights: m))
        }
        guard !resolved.isEmpty else { throw AdaptersError.matchesNothing(file: path, unmatched: unmatched.sorted()) }
        // A component whose every module misses (an SDXL UNet beside a CLIP-L text encoder that fits) is the
        // wrong architecture too, not a partial match.
        for index in indexes {
            let mine = modules.filter { $0.component == index.component }
            if !mine.isEmpty, !resolved.contains(where: { $0.component == index.component }) {
                throw AdaptersError.matchesNothing(file: path, unmatched: mine.flatMap(\.keys).sorted())
            }
        }
        var without: [String] = []
        for index in indexes {
            let covered = Set(resolved.filter { $0.component == index.component }.map(\.path))
            guard !covered.isEmpty else { continue }
            let kinds = LoRATargets(knownTargets.patterns.filter { p in covered.contains { LoRATargets([p]).matches($0) } })
            without += index.shapes.keys.filter { kinds.matches($0) && !covered.contains($0) }.sorted()
                .map { "\(index.component.rawValue).\($0)" }
        }
        let accounting = KeyAccounting(file: path, matched: resolved.flatMap(\.weights.keys).sorted(),
                                       unmatched: unmatched.sorted(), modulesWithoutAdapter: without,
                                       matchedModules: resolved.count)
        return ResolvedLoRA(file: self, modules: resolved, accounting: accounting)
    }
}
