// Backward: the reverse sweep over a recorded graph.
//
// Order: one iterative depth-first pass from the output gives a topological order of the recorded
// variables; walking it backwards, each variable's gradient is complete when it is reached, so every
// VJP runs exactly once. Intermediate gradients are dropped as soon as they are consumed.
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
        for (v, g) in seeds where v.requiresGrad {
            guard g.shape == v.value.shape else { throw AutogradError.seedShape(expected: v.value.shape, actual: g.shape) }
            accumulate(g, into: &pending[ObjectIdentifier(v)])
        }
        for v in topologicalOrder(seeds.map(\.0)).reversed() {
            guard let g = pending.removeValue(forKey: ObjectIdentifier(v)) else { continue }
            guard let node = v.node else {
                accumulate(g, into: &v.grad)
                continue
            }
            let grads = try node.vjp(g)
            guard grads.count == node.parents.count else {
                throw AutogradError.gradientCount(operation: node.name, expected: node.parents.count, actual: grads.count)
            }
            for (i, (parent, pg)) in zip(node.parents, grads).enumerated() {
                guard parent.requiresGrad, let pg else { continue }
                guard pg.shape == parent.value.shape else {
                    throw AutogradError.gradientShape(operation: node.name, input: i,
                                                      expected: parent.value.shape, actual: pg.shape)
                }
                accumulate(pg, into: &pending[ObjectIdentifier(parent)])
            }
        }
    }

    /// Variables that require a gradient and are reachable from `outputs`, parents before children.
    static func topologicalOrder(_ outputs: [Variable]) -> [Variable] {
        var order: [Variable] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Variable, Int)] = []
        for out in outputs where out.requiresGrad && visited.insert(ObjectIdentifier(out)).inserted {
            stack.append((out, 0))
            while let (v, next) = stack.popLast() {
                let parents = v.node?.parents ?? []
                if next < parents.count {
                    stack.append((v, next + 1))
                    let p = parents[next]
                    if p.requiresGrad && visited.insert(ObjectIdentifier(p)).inserted { stack.append((p, 0)) }
                } else {
                    order.append(v)
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
