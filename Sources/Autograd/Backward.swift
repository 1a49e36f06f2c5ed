// Backward: the reverse sweep over a recorded graph.
//
// Order: one iterative depth-first pass from the output gives a topological order of the recorded
// operations; walking it backwards, each node's gradient is complete when it is reached, so every VJP
// runs exactly once. Intermediate gradients are dropped as soon as they are consumed.
import TensorCore

public enum AutogradError: Error, CustomStringConvertible, Equatable {
    /// `backward()` without a seed gradient needs a one-element output.
    case nonScalarOutput(shape: [Int])
    /// A seed gradient does not have the output's shape.
    case seedShape(expected: [Int], actual: [Int])
    /// An op's VJP returned a gradient whose shape differs from its input's (a bug in that op).
    case gradientShape(operation: String, input: Int, expected: [Int], actual: [Int])
    /// An op's VJP returned the wrong number of gradients (a bug in that op).
    case gradientCount(operation: String, expected: Int, actual: Int)
    /// Inputs to an operation that do not fit together.
    case invalidInput(String)

    public var description: String {
        switch self {
        case .nonScalarOutput(let s):
            return "backward() without a seed gradient needs a one-element output, got shape \(s)"
        case .seedShape(let e, let a):
            return "seed gradient has shape \(a), the output has shape \(e)"
        case .gradientShape(let op, let i, let e, let a):
            return "\(op): gradient for input \(i) has shape \(a), the input has shape \(e)"
        case .gradientCount(let op, let e, let a):
            return "\(op): VJP returned \(a) gradients for \(e) inputs"
        case .invalidInput(let m):
            return m
        }
    }
}

extension Variable {
    /// Accumulates d(self)/d(leaf) into `grad` of every leaf that requires a gradient.
    /// `self` must hold one element (a loss) unless `seed` (the gradient of some scalar w.r.t. self) is given.
    public func backward(_ seed: Tensor? = nil) throws {
        let g: Tensor
        if let seed {
            guard seed.shape == value.shape else { throw AutogradError.seedShape(expected: value.shape, actual: seed.shape) }
            g = seed
        } else {
            guard value.count == 1 else { throw AutogradError.nonScalarOutput(shape: value.shape) }
            g = Tensor(shape: value.shape, repeating: 1)
        }
        try Variable.backward([(self, g)])
    }

    /// Runs one reverse sweep from several outputs, each with its own seed gradient.
    public static func backward(_ seeds: [(Variable, Tensor)]) throws {
        var pending: [ObjectIdentifier: Tensor] = [:]
        var roots: [Node] = []
        for (v, g) in seeds where v.requiresGrad {
            guard g.shape == v.value.shape else { throw AutogradError.seedShape(expected: v.value.shape, actual: g.shape) }
            let root = v.gradientNode
            accumulate(g, into: &pending[ObjectIdentifier(root)])
            roots.append(root)
        }
        for node in topologicalOrder(roots).reversed() {
            guard let g = pending.removeValue(forKey: ObjectIdentifier(node)) else { continue }
            guard let vjp = node.vjp else {
                if let leaf = node.leaf { accumulate(g, into: &leaf.grad) }
                continue
            }
            let grads = try vjp(g)
            guard grads.count == node.inputs.count else {
                throw AutogradError.gradientCount(operation: node.name, expected: node.inputs.count, actual: grads.count)
            }
            for (i, (input, ig)) in zip(node.inputs, grads).enumerated() {
                guard let input, let ig else { continue }
                guard ig.shape == input.shape else {
                    throw AutogradError.gradientShape(operation: node.name, input: i, expected: input.shape, actual: ig.shape)
                }
                accumulate(ig, into: &pending[ObjectIdentifier(input)])
            }
        }
    }

    /// Nodes reachable from `roots`, inputs before the operations that use them.
    static func topologicalOrder(_ roots: [Node]) -> [Node] {
        var order: [Node] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Node, Int)] = []
        for root in roots where visited.insert(ObjectIdentifier(root)).inserted {
            stack.append((root, 0))
            while let (node, next) = stack.popLast() {
                if next < node.inputs.count {
                    stack.append((node, next + 1))
                    if let input = node.inputs[next], visited.insert(ObjectIdentifier(input)).inserted {
                        stack.append((input, 0))
                    }
                } else {
                    order.append(node)
                }
            }
        }
        return order
    }

    /// `slot += g`, taking `g` as is when the slot is empty.
    static func accumulate(_ g: Tensor, into slot: inout Tensor?) {
        guard var sum = slot else { slot = g; return }
        slot = nil
        addInPlace(&sum, g)
        slot = sum
    }
}
