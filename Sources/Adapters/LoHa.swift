// LoHa (LyCORIS `lycoris/modules/loha.py`, peft `tuners/loha/layer.py`): the weight delta is the Hadamard
// (elementwise) product of two low-rank products,
//
//     ΔW = (α/r) · (w1_a·w1_b) ⊙ (w2_a·w2_b)
//
// with w1_a [out, r], w1_b [r, in·k·k] (reshaped to the base weight). Tucker convolutions (`hada_t1/t2`
// [r, r, k, k], w1_a [r, out], w1_b [r, in]) rebuild each factor as Σ_ij t[i, j]·w1_a[i, p]·w1_b[j, q]
// first. r = w1_b's first dimension (A1111 `network_hada.py`); α = r when the file has none.
import TensorCore

public struct LoHaFactors: AdapterFactors {
    public static let kind = AdapterKind.loha
    public static let suffixes = ["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"]
    public var w1a: Tensor, w1b: Tensor, w2a: Tensor, w2b: Tensor
    /// Tucker cores (both or neither).
    public var t1: Tensor?, t2: Tensor?
    public var alpha: Float?

    public init(tensors: [String: Tensor], alpha: Float?) throws {
        guard let w1a = tensors["hada_w1_a"], let w1b = tensors["hada_w1_b"], let w2a = tensors["hada_w2_a"],
              let w2b = tensors["hada_w2_b"] else {
            throw AdapterFactorsError("a LoHa module needs hada_w1_a, hada_w1_b, hada_w2_a and hada_w2_b (has \(FactorAlgebra.describe(tensors)))")
        }
        guard (tensors["hada_t1"] == nil) == (tensors["hada_t2"] == nil) else {
            throw AdapterFactorsError("a Tucker LoHa module needs both hada_t1 and hada_t2")
        }
        guard [w1a, w1b, w2a, w2b].allSatisfy({ $0.rank == 2 }) else {
            throw AdapterFactorsError("LoHa factors must be matrices (has \(FactorAlgebra.describe(tensors)))")
        }
        (self.w1a, self.w1b, self.w2a, self.w2b) = (w1a, w1b, w2a, w2b)
        (t1, t2) = (tensors["hada_t1"], tensors["hada_t2"])
        self.alpha = alpha
    }

    public var rank: Int { w1b.shape[0] }
    public var parameterCount: Int { [w1a, w1b, w2a, w2b].reduce(0) { $0 + $1.count } + (t1?.count ?? 0) + (t2?.count ?? 0) }

    /// Each factor's product before the Hadamard product, in checkpoint shape when Tucker, else [out, in·k·k].
    func factor(_ a: Tensor, _ b: Tensor, _ t: Tensor?) throws -> Tensor {
        if let t { return try FactorAlgebra.tucker(t, a, b) }
        guard a.shape[1] == b.shape[0] else { throw AdapterFactorsError("LoHa factors \(a.shape) · \(b.shape) do not chain") }
        return try TensorCore.matmul(a, b)
    }

    public func misfit(base: [Int]) -> String? {
        let count = base.reduce(1, *)
        if let t1, let t2 {
            guard base.count == 4, t1.shape.count == 4, Array(t1.shape[2...]) == Array(base[2...]), t2.shape == t1.shape,
                  w1a.shape == [t1.shape[0], base[0]], w2a.shape == [t2.shape[0], base[0]],
                  w1b.shape == [t1.shape[1], base[1]], w2b.shape == [t2.shape[1], base[1]] else {
                return "Tucker LoHa t \(t1.shape), w1_a \(w1a.shape), w1_b \(w1b.shape) do not fit \(base)"
            }
            return nil
        }
        for (a, b) in [(w1a, w1b), (w2a, w2b)] {
            guard a.shape[0] == base[0], a.shape[1] == b.shape[0], a.shape[0] * b.shape[1] == count else {
                return "LoHa factors \(a.shape) · \(b.shape) do not give \(base)"
            }
        }
        return nil
    }

    public func weightDelta(base: [Int]) throws -> Tensor {
        if let reason = misfit(base: base) { throw AdapterFactorsError(reason) }
        let p1 = try factor(w1a, w1b, t1), p2 = try factor(w2a, w2b, t2)
        let product = try Elementwise.mul(p1, p2)
        return Elementwise.scale(product, by: (alpha ?? Float(rank)) / Float(rank)).reshapedUnchecked(base)
    }

    public var fileTensors: [(suffix: String, tensor: Tensor)] {
        [("hada_w1_a", w1a), ("hada_w1_b", w1b), ("hada_w2_a", w2a), ("hada_w2_b", w2b)]
            + (t1.map { [("hada_t1", $0)] } ?? []) + (t2.map { [("hada_t2", $0)] } ?? [])
    }
}
