// Module: a node of a model's tree. Its children and parameters are named by the checkpoint's own key
// segments, so a module's key paths are exactly the diffusers/transformers state-dict keys
// (`down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out.0.weight`).
//
// By default a module finds its children and parameters by reflection over its stored properties, in
// declaration order (superclass first): a property holding a `Module` (or `Module?`) is a child and one
// holding a `Variable` (or `Variable?`) is a parameter, each keyed by the property's name. Properties are
// therefore named like the checkpoint (`to_q`, `conv_shortcut`, `time_emb_proj`); numbered children live
// in a `ModuleList`. A module whose keys cannot be property names overrides `namedChildren()` /
// `namedDirectParameters()`.
import Autograd
import TensorCore

open class Module {
    /// Whether the module runs in training mode (dropout active). Set for a whole tree with `train()`/`eval()`.
    public private(set) var isTraining = true

    public init() {}

    /// Direct children with their key segments, in declaration order.
    open func namedChildren() -> [(String, Module)] {
        reflectedProperties().compactMap { name, value in (value as? Module).map { (name, $0) } }
    }

    /// This module's own parameters (not its children's) with their key segments, in declaration order.
    open func namedDirectParameters() -> [(String, Variable)] {
        reflectedProperties().compactMap { name, value in (value as? Variable).map { (name, $0) } }
    }

    /// Parameters of adapters attached to this module (not its children), named relative to the module.
    /// They take no part in `stateDict()`/`load` but count in `parameterReport()` and `trainableParameters()`.
    open func namedAdapterParameters() -> [(String, Variable)] { [] }

    /// Checkpoint keys, relative to this module, that loading accepts and drops: tensors some checkpoints
    /// carry that are not parameters (e.g. transformers' `embeddings.position_ids` buffer).
    open func ignoredStateDictKeys() -> [String] { [] }

    /// The shape a direct parameter has in a checkpoint. Modules that store a parameter in another layout
    /// (Conv2d) override this together with `checkpointValue(ofParameter:_:)` and `assignParameter(_:_:fromCheckpoint:)`.
    open func checkpointShape(ofParameter name: String, _ parameter: Variable) -> [Int] { parameter.shape }

    /// A direct parameter's value in checkpoint layout.
    open func checkpointValue(ofParameter name: String, _ parameter: Variable) -> Tensor { parameter.value }

    /// Sets a direct parameter from a checkpoint tensor whose shape was checked against `checkpointShape`.
    open func assignParameter(_ name: String, _ parameter: Variable, fromCheckpoint tensor: Tensor) {
        parameter.value = tensor
    }

    /// Draws this module's own parameters (not its children's) as PyTorch initialises a fresh layer.
    /// The default leaves them as they are; Linear, Conv2d and Embedding override it.
    open func resetParameters(random: inout PhiloxRandom) {}

    /// Stored properties of this object, superclass first, with their values.
    private func reflectedProperties() -> [(String, Any)] {
        var mirrors: [Mirror] = []
        var m: Mirror? = Mirror(reflecting: self)
        while let current = m { mirrors.append(current); m = current.superclassMirror }
        return mirrors.reversed().flatMap { mirror in
            mirror.children.compactMap { child in child.label.map { ($0, child.value) } }
        }
    }
}

// MARK: - Tree walks

extension Module {
    /// Every module of the tree with its key path (`""` for `self`), parents before children.
    public func namedModules() -> [(String, Module)] {
        var out: [(String, Module)] = []
        func walk(_ m: Module, _ path: String) {
            out.append((path, m))
            for (name, child) in m.namedChildren() { walk(child, joinKey(path, name)) }
        }
        walk(self, "")
        return out
    }

    /// The descendant at a key path (`"down_blocks.0.attentions.0"`; `""` is `self`), or nil.
    public func module(at path: String) -> Module? {
        var current: Module = self
        for segment in path.split(separator: ".", omittingEmptySubsequences: true) {
            guard let child = current.namedChildren().first(where: { $0.0 == segment })?.1 else { return nil }
            current = child
        }
        return current
    }

    /// Every checkpoint parameter with its full key path, in tree order (adapters excluded).
    public func namedParameters() -> [(String, Variable)] {
        parameterSlots().map { ($0.key, $0.parameter) }
    }

    /// Every parameter, adapters included, that requires a gradient: what an optimiser updates.
    public func trainableParameters() -> [(String, Variable)] {
        allParameters().filter { $0.1.requiresGrad }
    }

    /// Checkpoint parameters and adapter parameters in tree order, each variable once (shared weights count once).
    public func allParameters() -> [(String, Variable)] {
        var seen = Set<ObjectIdentifier>()
        var out: [(String, Variable)] = []
        for (path, m) in namedModules() {
            for (name, p) in m.namedDirectParameters() + m.namedAdapterParameters()
            where seen.insert(ObjectIdentifier(p)).inserted {
                out.append((joinKey(path, name), p))
            }
        }
        return out
    }

    /// Initialises every parameter of the tree as PyTorch does for fresh layers, in tree order, from
    /// `random`: the same seed gives the same weights.
    public func initializeParameters(random: inout PhiloxRandom) {
        for (_, m) in namedModules() { m.resetParameters(random: &random) }
    }

    /// Switches the whole tree to training mode (dropout active).
    public func train() { for (_, m) in namedModules() { m.isTraining = true } }

    /// Switches the whole tree to evaluation mode (dropout is the identity).
    public func eval() { for (_, m) in namedModules() { m.isTraining = false } }

    /// Stops gradients for every checkpoint parameter of the tree (adapters keep theirs).
    public func freeze() { setRequiresGrad(false) { _ in true } }

    /// Lets every checkpoint parameter of the tree receive gradients.
    public func unfreeze() { setRequiresGrad(true) { _ in true } }

    /// Sets `requiresGrad` on the checkpoint parameters whose full key path satisfies `predicate`.
    public func setRequiresGrad(_ value: Bool, where predicate: (String) -> Bool) {
        for (key, p) in namedParameters() where predicate(key) { p.requiresGrad = value }
    }

    /// Forgets the gradients of every parameter, adapters included.
    public func zeroGrad() { for (_, p) in allParameters() { p.zeroGrad() } }

    /// A checkpoint parameter together with the module that owns it.
    struct ParameterSlot {
        let key: String
        let owner: Module
        let name: String
        let parameter: Variable
    }

    func parameterSlots() -> [ParameterSlot] {
        namedModules().flatMap { path, m in
            m.namedDirectParameters().map {
                ParameterSlot(key: joinKey(path, $0.0), owner: m, name: $0.0, parameter: $0.1)
            }
        }
    }
}

/// `a.b`, or `b` when `a` is empty.
func joinKey(_ path: String, _ name: String) -> String { path.isEmpty ? name : path + "." + name }

/// Numbered children (`down_blocks.0`, `resnets.1`, `to_out.0`), keyed "0", "1", ….
public final class ModuleList<Element: Module>: Module, RandomAccessCollection {
    public private(set) var items: [Element]

    public init(_ items: [Element]) {
        self.items = items
        super.init()
    }

    public override func namedChildren() -> [(String, Module)] {
        items.enumerated().map { (String($0.offset), $0.element) }
    }

    public override func namedDirectParameters() -> [(String, Variable)] { [] }

    public var startIndex: Int { items.startIndex }
    public var endIndex: Int { items.endIndex }
    public subscript(index: Int) -> Element { items[index] }
}
