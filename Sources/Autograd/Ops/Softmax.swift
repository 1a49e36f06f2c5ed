// Softmax over the last dimension and its VJP (dx = y·(g − Σ g·y)).
import TensorCore

/// softmax(x) along the last dimension.
public func softmax(_ x: Variable) throws -> Variable {
    let y = try Softmax.softmax(x.value)
    return Variable.result(y, of: "softmax", inputs: [x]) { g in [try Softmax.softmaxBackward(g, output: y)] }
}
