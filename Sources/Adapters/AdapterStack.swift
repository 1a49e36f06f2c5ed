// AdapterStack: the LoRA branches of one model component (UNet or text encoder) and the named adapters
// loaded into them. Adapters are added, re-weighted, disabled and removed without touching the base
// weights; `fuse` bakes the weighted sum into them and `unfuse` restores them exactly.
import Autograd
import NN
import TensorCore

public final class AdapterStack {
    public let root: Module
    public let index: ModuleIndex
    /// Branches by key path, created on first use.
    private var branches: [String: LoRABranch] = [:]
    /// Loaded adapter names, in load order.
    public private(set) var adapterNames: [String] = []
    /// Seed for the branches' dropout streams.
    private let seed: UInt64

    /// `aliases`: other names of the model's modules that adapter files may use (foreign name → our path).
    public init(root: Module, component: ModelComponent, seed: UInt64 = 0, aliases: [String: String] = [:]) {
        self.root = root
        self.index = ModuleIndex(component: component, root: root, aliases: aliases)
        self.seed = seed
    }

    public var component: ModelComponent { index.component }

    /// The branch on a layer, made on first use (nil when the path is no Linear/Conv2d).
    public func branch(at path: String) -> LoRABranch? {
        if let b = branches[path] { return b }
        let s = seed &+ path.utf8.reduce(UInt64(0xcbf29ce484222325)) { ($0 ^ UInt64($1)) &* 0x100000001b3 }   // FNV-1a: stable across runs
        let made: LoRABranch? = (root.module(at: path) as? Linear).map { LoRALinear(layer: $0, seed: s) }
            ?? (root.module(at: path) as? Conv2d).map { LoRAConv(layer: $0, seed: s) }
        branches[path] = made
        return made
    }

    /// Every branch that holds an entry of adapter `name` (any kind), with that entry, in path order.
    public func entries(of name: String) -> [(path: String, branch: LoRABranch, entry: LayerAdapterEntry)] {
        branches.keys.sorted().compactMap { path in
            branches[path]!.entry(named: name).map { (path, branches[path]!, $0) }
        }
    }

    /// Every branch that holds a LoRA pair of adapter `name`, with that pair, in path order.
    public func pairs(of name: String) -> [(path: String, branch: LoRABranch, pair: LoRAPair)] {
        branches.keys.sorted().compactMap { path in
            branches[path]!.pair(named: name).map { (path, branches[path]!, $0) }
        }
    }

    // MARK: Adding and removing

    /// Loads resolved modules of this component as adapter `name` at `weight`. Shapes were checked by
    /// `LoRAFile.resolve`; nothing is changed when an error is thrown.
    public func load(_ modules: [ResolvedModule], name: String, weight: Float = 1) throws {
        guard !adapterNames.contains(name) else { throw AdaptersError.duplicateAdapter(name) }
        let mine = modules.filter { $0.component == component }
        var targets: [(LoRABranch, ResolvedModule)] = []
        for m in mine {
            guard let b = branch(at: m.path) else { throw AdaptersError.invalidRequest("'\(m.path)' is not a Linear or Conv2d layer") }
            if let reason = m.weights.misfit(base: b.baseShape) {
                guard m.weights.kind == .lora else {
                    throw AdaptersError.incompleteModule(file: name, module: m.path, reason: reason)
                }
                throw AdaptersError.shapeMismatch(file: name, module: m.path, keys: m.weights.keys, base: b.baseShape,
                                                  down: m.weights.down.shape, up: m.weights.up.shape)
            }
            targets.append((b, m))
        }
        var added: [LoRABranch] = []
        do {
            for (b, m) in targets {
                if m.weights.kind == .lora {
                    b.addPair(name: name, down: m.weights.down, up: m.weights.up, alpha: m.weights.effectiveAlpha, weight: weight)
                } else {
                    try b.addDeltaPair(name: name, factors: m.weights.factors, weight: weight)
                }
                added.append(b)
            }
        } catch {
            for b in added { b.removePair(named: name) }
            if let error = error as? AdapterFactorsError { throw AdaptersError.invalidRequest("\(name): \(error.description)") }
            throw error
        }
        adapterNames.append(name)
    }

    /// Adds a new trainable adapter of rank `rank` on every layer matching `targets` (down drawn from
    /// `random`, up zero: the model's output is unchanged bit for bit). Returns the number of layers.
    @discardableResult
    public func addTrainable(name: String, rank: Int, alpha: Float? = nil, targets: LoRATargets,
                             initialization: LoRAInit = .kaimingUniform, dropout: Float = 0, dora: Bool = false,
                             random: inout PhiloxRandom) throws -> Int {
        guard !adapterNames.contains(name) else { throw AdaptersError.duplicateAdapter(name) }
        guard rank > 0 else { throw AdaptersError.invalidRequest("LoRA rank must be positive, got \(rank)") }
        let paths = index.shapes.keys.filter(targets.matches).sorted()
        guard !paths.isEmpty else {
            throw AdaptersError.invalidRequest("no \(component.rawValue) layer matches the targets \(targets.patterns.joined(separator: ", "))")
        }
        for path in paths {
            guard let b = branch(at: path) else { continue }
            b.dropout = dropout
            b.addTrainablePair(name: name, rank: rank, alpha: alpha ?? Float(rank), initialization: initialization, dora: dora,
                               random: &random)
        }
        adapterNames.append(name)
        return paths.count
    }

    /// Records a trainable adapter added layer by layer (AdaLoRA).
    func registerTrainable(_ name: String) { adapterNames.append(name) }

    /// Removes adapter `name` (unfusing first if it is fused).
    public func remove(_ name: String) throws {
        let found = try checked(name)
        if found.contains(where: { $0.entry.isFused }) { unfuse() }
        for (_, b, _) in found { b.removePair(named: name) }
        adapterNames.removeAll { $0 == name }
    }

    // MARK: Weights

    /// Sets adapter `name`'s weight (w in w·α/r) on every layer.
    public func setWeight(_ weight: Float, for name: String) throws {
        for (_, b, e) in try checked(name) { e.weight = weight; b.syncAttachment() }
    }

    /// Turns adapter `name` off or on without forgetting it.
    public func setEnabled(_ enabled: Bool, for name: String) throws {
        for (_, b, e) in try checked(name) { e.isEnabled = enabled; b.syncAttachment() }
    }

    private func checked(_ name: String) throws -> [(path: String, branch: LoRABranch, entry: LayerAdapterEntry)] {
        guard adapterNames.contains(name) else { throw AdaptersError.unknownAdapter(name) }
        return entries(of: name)
    }

    // MARK: Fusing

    /// Whether some adapter is baked into the base weights.
    public var isFused: Bool { branches.values.contains { $0.entries.contains(where: \.isFused) } }

    /// Bakes Σ w·(α/r)·B·A of the enabled adapters (`names`, default all) into the base weights; they then
    /// cost nothing per step. Refuses NaN/Inf, and per-row weights (inside `AdapterRowWeights.apply`), before
    /// changing anything.
    public func fuse(_ names: [String]? = nil) throws {
        let selected = names ?? adapterNames
        for n in selected where !adapterNames.contains(n) { throw AdaptersError.unknownAdapter(n) }
        var plan: [(String, LoRABranch, [LayerAdapterEntry], Tensor)] = []
        for path in branches.keys.sorted() {
            let b = branches[path]!
            let chosen = b.entries.filter { selected.contains($0.name) && $0.isEnabled && !$0.isFused }
            guard !chosen.isEmpty else { continue }
            var total: Tensor?
            for p in chosen {
                guard p.rowWeights == nil else {
                    throw AdaptersError.invalidRequest("adapter '\(p.name)' has per-image weights in this call and cannot be fused")
                }
                let d = try b.weightDelta(of: p, weight: p.weight)
                guard allFinite(d) else { throw AdaptersError.nonFinite(adapter: p.name, module: path) }
                total = try total.map { try Elementwise.add($0, d) } ?? d
            }
            plan.append((path, b, chosen, total!))
        }
        for (path, b, chosen, delta) in plan {
            if let linear = root.module(at: path) as? Linear { try linear.bakeWeightDelta(delta) }
            if let conv = root.module(at: path) as? Conv2d { try conv.bakeWeightDelta(delta) }
            for p in chosen { p.isFused = true }
            b.syncAttachment()
        }
    }

    /// Restores every fused base weight exactly and makes the fused adapters run as branches again.
    public func unfuse() {
        for (path, b) in branches where b.entries.contains(where: \.isFused) {
            (root.module(at: path) as? Linear)?.restoreBakedWeight()
            (root.module(at: path) as? Conv2d)?.restoreBakedWeight()
            for p in b.entries { p.isFused = false }
            b.syncAttachment()
        }
    }

    // MARK: Export

    /// Adapter `name` as file modules (checkpoint layout, file names), e.g. to save a trained adapter.
    public func export(_ name: String) throws -> [LoRAModuleWeights] {
        try checked(name).map { path, b, e in
            if let other = e as? WeightDeltaPair {
                return LoRAModuleWeights(component: component, name: index.fileName(path), factors: other.factors)
            }
            let p = e as! LoRAPair
            let (down, up) = b.checkpointTensors(p)
            if let m = p.magnitude {
                return LoRAModuleWeights(component: component, name: index.fileName(path),
                                         factors: DoRAFactors(lora: LoRAFactors(down: down, up: up, alpha: p.alpha), magnitude: m.value))
            }
            return LoRAModuleWeights(component: component, name: index.fileName(path), down: down, up: up, alpha: p.alpha)
        }
    }
}

func allFinite(_ t: Tensor) -> Bool {
    t.withUnsafeBufferPointer { b in b.allSatisfy { $0.isFinite } }
}
