// Sums and means (over everything or one axis) and the mean-squared-error loss, with their VJPs.
import TensorCore

/// Σ x over all elements → a one-element tensor of shape [].
public func sum(_ x: Variable) -> Variable {
    let shape = x.shape
    return Variable.result(Tensor(scalar: Reduction.sum(x.value)), of: "sum", inputs: [x]) { g in
        [Tensor(shape: shape, repeating: g.item)]
    }
}

/// Mean of all elements → shape [].
public func mean(_ x: Variable) -> Variable {
    let shape = x.shape, n = Float(max(x.value.count, 1))
    return Variable.result(Tensor(scalar: Reduction.mean(x.value)), of: "mean", inputs: [x]) { g in
        [Tensor(shape: shape, repeating: g.item / n)]
    }
}

/// Σ over `axis` (removed unless `keepingDimension`).
public func sum(_ x: Variable, axis: Int, keepingDimension: Bool = false) throws -> Variable {
    let shape = x.shape
    let y = try Reduction.sum(x.value, axis: axis, keepingDimension: keepingDimension)
    return Variable.result(y, of: "sum(axis)", inputs: [x]) { g in
        [try Reduction.sumBackward(g, inputShape: shape, axis: axis)]
    }
}

/// Mean over `axis` (removed unless `keepingDimension`).
public func mean(_ x: Variable, axis: Int, keepingDimension: Bool = false) throws -> Variable {
    let shape = x.shape
    let y = try Reduction.mean(x.value, axis: axis, keepingDimension: keepingDimension)
    return Variable.result(y, of: "mean(axis)", inputs: [x]) { g in
        [try Reduction.meanBackward(g, inputShape: shape, axis: axis)]
    }
}

/// mean((prediction − target)²) → shape []; PyTorch's `F.mse_loss` with reduction "mean".
public func mseLoss(_ prediction: Variable, _ target: Variable) throws -> Variable {
    guard prediction.shape == target.shape else {
        throw AutogradError.invalidInput("mseLoss: prediction \(prediction.shape) and target \(target.shape) differ")
    }
    let diff = try Elementwise.sub(prediction.value, target.value)
    let n = Float(max(diff.count, 1))
    let (np, nt) = (prediction.requiresGrad, target.requiresGrad)
    let loss = Tensor(scalar: Reduction.sumOfSquares(diff) / n)
    return Variable.result(loss, of: "mseLoss", inputs: [prediction, target]) { g in
        let d = Elementwise.scale(diff, by: 2 * g.item / n)
        return [np ? d : nil, nt ? Elementwise.scale(d, by: -1) : nil]
    }
}
