// Variable: a tensor that takes part in reverse-mode automatic differentiation (define-by-run, as PyTorch).
//
// An operation whose inputs all have `requiresGrad == false` (or that runs inside `withNoGrad`) records
// nothing: its result is a plain leaf and inference pays only for the wrapper object. Otherwise the result
// gets a node that links to its inputs' nodes and holds a backward closure (the op's vector-Jacobian
// product); `backward()` on a scalar loss walks that graph once in topological order and accumulates
// gradients into the leaves' `grad`.
import TensorCore

/// A value in the differentiation graph: a tensor, its gradient, and how it was computed.
///
/// The graph links operations (`Node`s), not variables: a recorded result's node holds its inputs' nodes
/// and whatever tensors its VJP needs, nothing else, so intermediate values are freed as soon as no
/// variable and no VJP refers to them.
public final class Variable {
    /// The forward value. Optimisers update parameters by assigning it.
    public var value: Tensor
    /// Accumulated gradient of the last `backward()` calls; only leaves that require a gradient get one.
    public var grad: Tensor?
    /// Whether gradients flow to (leaves) or through (results of recorded ops) this variable.
    /// Set it on leaves only (parameters, inputs); it is read when an op records itself.
    public var requiresGrad: Bool
    /// How this variable was computed; nil for leaves.
    let node: Node?
    /// The node that receives a leaf's gradient, made on first use by a recorded op.
    private var accumulator: Node?

    /// A leaf variable.
    public init(_ value: Tensor, requiresGrad: Bool = false) {
        self.value = value
        self.requiresGrad = requiresGrad
        self.node = nil
    }

    init(_ value: Tensor, node: Node) {
        self.value = value
        self.requiresGrad = true
        self.node = node
    }

    public var shape: [Int] { value.shape }

    /// True for variables created directly (parameters, inputs, results of unrecorded ops).
    public var isLeaf: Bool { node == nil }

    /// Name of the operation that produced this variable (`"leaf"` for leaves); for debugging.
    public var operation: String { node?.name ?? "leaf" }

    /// A leaf with the same value that is cut off from the graph and needs no gradient.
    public func detached() -> Variable { Variable(value) }

    /// Forgets the accumulated gradient.
    public func zeroGrad() { grad = nil }

    /// Where gradients for this variable go: its operation's node, or a leaf's accumulator.
    var gradientNode: Node {
        if let node { return node }
        if let accumulator { return accumulator }
        let a = Node(leaf: self)
        accumulator = a
        return a
    }
}

/// One recorded operation: the nodes of its inputs that need gradients and its vector-Jacobian product;
/// or, for a leaf, the accumulator that adds incoming gradients to the leaf's `grad`.
final class Node {
    /// Operation name, e.g. `"linear"`; used in error messages and backward traces.
    let name: String
    /// Shape of the operation's output (the shape its incoming gradient must have).
    let shape: [Int]
    /// One entry per input: the input's node, or nil when that input needs no gradient.
    let inputs: [Node?]
    /// Maps the output gradient to one gradient per input (nil where an input needs none); nil for leaves.
    let vjp: ((Tensor) throws -> [Tensor?])?
    /// The leaf whose `grad` this accumulator fills (weak: the graph does not keep leaves alive).
    private(set) weak var leaf: Variable?

    init(name: String, shape: [Int], inputs: [Node?], vjp: @escaping (Tensor) throws -> [Tensor?]) {
        self.name = name
        self.shape = shape
        self.inputs = inputs
        self.vjp = vjp
    }

    init(leaf: Variable) {
        name = "leaf"
        shape = leaf.shape
        inputs = []
        vjp = nil
        self.leaf = leaf
    }
}

extension Variable {
    /// The result of an operation on `inputs`: recorded with `vjp` when grad mode is on and an input
    /// requires a gradient, otherwise a plain leaf (and `vjp` is dropped unused).
    ///
    /// `vjp` receives the output gradient and returns one gradient per input, in order. It must return nil
    /// for inputs whose `requiresGrad` was false when the op ran, so that no work is spent on them. It should
    /// capture only the tensors it reads (never the input variables), so that the graph keeps nothing else.
    public static func result(_ value: Tensor, of name: String, inputs: [Variable],
                              vjp: @escaping (Tensor) throws -> [Tensor?]) -> Variable {
        guard GradMode.shouldRecord(inputs) else { return Variable(value) }
        return recorded(value, name: name, inputs: inputs, vjp: vjp)
    }

    static func recorded(_ value: Tensor, name: String, inputs: [Variable],
                         vjp: @escaping (Tensor) throws -> [Tensor?]) -> Variable {
        let edges = inputs.map { $0.requiresGrad ? $0.gradientNode : nil }
        return Variable(value, node: Node(name: name, shape: value.shape, inputs: edges, vjp: vjp))
    }
}

extension Variable: CustomStringConvertible {
    public var description: String {
        "Variable(\(operation), \(value.shape)\(requiresGrad ? ", requiresGrad" : ""))"
    }
}
