// Variable: a tensor that takes part in reverse-mode automatic differentiation (define-by-run, as PyTorch).
//
// An operation whose inputs all have `requiresGrad == false` (or that runs inside `withNoGrad`) records
// nothing: its result is a plain leaf and inference pays only for the wrapper object. Otherwise the result
// keeps its parents and a backward closure (the op's vector-Jacobian product); `backward()` on a scalar
// loss walks that graph once in topological order and accumulates gradients into the leaves' `grad`.
import TensorCore

/// A node of the differentiation graph: a tensor value, its gradient, and how it was computed.
public final class Variable {
    /// The forward value. Optimisers update parameters by assigning it.
    public var value: Tensor
    /// Accumulated gradient of the last `backward()` calls; only leaves that require a gradient get one.
    public var grad: Tensor?
    /// Whether gradients flow to (leaves) or through (results of recorded ops) this variable.
    /// Set it on leaves only (parameters, inputs); results of recorded ops always require a gradient.
    public var requiresGrad: Bool
    /// How this variable was computed; nil for leaves.
    let node: Node?

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

    @inlinable public var shape: [Int] { value.shape }

    /// True for variables created directly (parameters, inputs, results of unrecorded ops).
    public var isLeaf: Bool { node == nil }

    /// Name of the operation that produced this variable (`"leaf"` for leaves); for debugging.
    public var operation: String { node?.name ?? "leaf" }

    /// A leaf with the same value that is cut off from the graph and needs no gradient.
    public func detached() -> Variable { Variable(value) }

    /// Forgets the accumulated gradient.
    public func zeroGrad() { grad = nil }
}

/// The recorded part of an operation: its inputs and its vector-Jacobian product.
final class Node {
    /// Operation name, e.g. `"linear"`; used in error messages and backward traces.
    let name: String
    let parents: [Variable]
    /// Maps the gradient of the output to gradients of the parents (same order; nil where a parent needs none).
    let vjp: (Tensor) throws -> [Tensor?]

    init(name: String, parents: [Variable], vjp: @escaping (Tensor) throws -> [Tensor?]) {
        self.name = name
        self.parents = parents
        self.vjp = vjp
    }
}

extension Variable {
    /// The result of an operation on `inputs`: recorded with `vjp` when grad mode is on and an input
    /// requires a gradient, otherwise a plain leaf (and `vjp` is never built into a node).
    ///
    /// `vjp` receives the output gradient and returns one gradient per input, in order; it must return nil
    /// for inputs whose `requiresGrad` is false so that no work is spent on them.
    public static func result(_ value: Tensor, of name: String, inputs: [Variable],
                              vjp: @escaping (Tensor) throws -> [Tensor?]) -> Variable {
        guard GradMode.shouldRecord(inputs) else { return Variable(value) }
        return recorded(value, name: name, inputs: inputs, vjp: vjp)
    }

    static func recorded(_ value: Tensor, name: String, inputs: [Variable],
                         vjp: @escaping (Tensor) throws -> [Tensor?]) -> Variable {
        Variable(value, node: Node(name: name, parents: inputs, vjp: vjp))
    }
}

extension Variable: CustomStringConvertible {
    public var description: String {
        "Variable(\(operation), \(value.shape)\(requiresGrad ? ", requiresGrad" : ""))"
    }
}
