// Gradient checkpointing: trade compute for memory.
//
// `checkpoint(inputs, body)` runs `body` once without recording, so none of its intermediate values is
// kept, and records a single node that holds only the inputs. During backward the node runs `body`
// again with recording on (from detached copies of the inputs), back-propagates the incoming gradients
// through that fresh graph, and hands the inputs' gradients on. Parameters used inside `body` receive
// their gradients during that inner sweep, exactly as without checkpointing. `body` must be
// deterministic (same inputs → same outputs), e.g. dropout must draw from an explicitly seeded source.
import TensorCore

/// Runs `body` on `inputs` under gradient checkpointing and returns its outputs.
public func checkpoint(_ inputs: [Variable], _ body: @escaping ([Variable]) throws -> [Variable]) throws -> [Variable] {
    guard GradMode.isEnabled else { return try body(inputs) }
    let probe = GradMode.Probe()
    let outputs = try GradMode.$probe.withValue(probe) { try withNoGrad { try body(inputs) } }
    guard probe.sawGradient || inputs.contains(where: \.requiresGrad) else { return outputs }

    // Each output's node recomputes the block and back-propagates only its own gradient, so an output
    // that receives no gradient costs nothing; a single-output block (the usual case) recomputes once.
    let outputCount = outputs.count
    return outputs.enumerated().map { index, out in
        Variable.recorded(out.value, name: "checkpoint", inputs: inputs) { g in
            let fresh = inputs.map { Variable($0.value, requiresGrad: $0.requiresGrad) }
            let recomputed = try withGrad { try body(fresh) }
            guard recomputed.count == outputCount, recomputed[index].value.shape == g.shape else {
                throw AutogradError.invalidInput("checkpoint: the recomputed block returned other outputs than the first run")
            }
            try Variable.backward([(recomputed[index], g)])
            return fresh.map(\.grad)
        }
    }
}

/// Single-input, single-output form of `checkpoint(_:_:)`.
public func checkpoint(_ input: Variable, _ body: @escaping (Variable) throws -> Variable) throws -> Variable {
    try checkpoint([input]) { [try body($0[0])] }[0]
}
