// Broadcasting add / sub / mul and scaling, with their VJPs (the broadcast operand's gradient is the
// output gradient summed over the broadcast dimensions).
import TensorCore

/// a + b with NumPy broadcasting (e.g. bias [C] on [N, H, W, C], time embedding [N, 1, 1, C]).
public func add(_ a: Variable, _ b: Variable) throws -> Variable {
    let y = try Elementwise.add(a.value, b.value)
    let (sa, sb) = (a.shape, b.shape)
    let (na, nb) = (a.requiresGrad, b.requiresGrad)
    return Variable.result(y, of: "add", inputs: [a, b]) { g in
        [na ? try Elementwise.reduceBroadcast(g, to: sa) : nil,
         nb ? try Elementwise.reduceBroadcast(g, to: sb) : nil]
    }
}

/// a − b with broadcasting.
public func sub(_ a: Variable, _ b: Variable) throws -> Variable {
    let y = try Elementwise.sub(a.value, b.value)
    let (sa, sb) = (a.shape, b.shape)
    let (na, nb) = (a.requiresGrad, b.requiresGrad)
    return Variable.result(y, of: "sub", inputs: [a, b]) { g in
        [na ? try Elementwise.reduceBroadcast(g, to: sa) : nil,
         nb ? try Elementwise.reduceBroadcast(Elementwise.scale(g, by: -1), to: sb) : nil]
    }
}

/// a · b elementwise with broadcasting.
public func mul(_ a: Variable, _ b: Variable) throws -> Variable {
    let y = try Elementwise.mul(a.value, b.value)
    let (na, nb) = (a.requiresGrad, b.requiresGrad)
    let (sa, sb) = (a.shape, b.shape)
    let (va, vb) = (nb ? a.value : Tensor(zeros: [0]), na ? b.value : Tensor(zeros: [0]))   // dA reads B, dB reads A
    return Variable.result(y, of: "mul", inputs: [a, b]) { g in
        [na ? try Elementwise.reduceBroadcast(Elementwise.mul(g, vb), to: sa) : nil,
         nb ? try Elementwise.reduceBroadcast(Elementwise.mul(g, va), to: sb) : nil]
    }
}

/// s · x.
public func scale(_ x: Variable, by s: Float) -> Variable {
    Variable.result(Elementwise.scale(x.value, by: s), of: "scale", inputs: [x]) { g in
        [Elementwise.scale(g, by: s)]
    }
}

extension Variable {
    public static func + (a: Variable, b: Variable) throws -> Variable { try add(a, b) }
    public static func - (a: Variable, b: Variable) throws -> Variable { try sub(a, b) }
    public static func * (a: Variable, b: Variable) throws -> Variable { try mul(a, b) }
    public static func * (s: Float, x: Variable) -> Variable { scale(x, by: s) }
}
