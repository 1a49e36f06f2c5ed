// Pointwise activations (SiLU, GELU, quick-GELU) and GEGLU, with their VJPs.
import TensorCore

/// x · sigmoid(x).
public func silu(_ x: Variable) -> Variable {
    let input = x.value
    return Variable.result(Activation.silu(input), of: "silu", inputs: [x]) { g in
        [try Activation.siluBackward(g, input)]
    }
}

/// GELU, exact (erf) or with the tanh approximation.
public func gelu(_ x: Variable, approximation: GELUApproximation = .none) -> Variable {
    let input = x.value
    return Variable.result(Activation.gelu(input, approximation: approximation), of: "gelu", inputs: [x]) { g in
        [try Activation.geluBackward(g, input, approximation: approximation)]
    }
}

/// CLIP's quick-GELU: x · sigmoid(1.702 x).
public func quickGELU(_ x: Variable) -> Variable {
    let input = x.value
    return Variable.result(Activation.quickGELU(input), of: "quickGELU", inputs: [x]) { g in
        [try Activation.quickGELUBackward(g, input)]
    }
}

/// GEGLU (diffusers FeedForward): x [..., 2F] → (h, gate) halves of the last dim → h · gelu(gate) [..., F].
public func geglu(_ x: Variable) throws -> Variable {
    let input = x.value
    return Variable.result(try Activation.geglu(input), of: "geglu", inputs: [x]) { g in
        [try Activation.gegluBackward(g, input)]
    }
}
