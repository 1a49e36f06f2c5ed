// LoKr (LyCORIS `lycoris/modules/lokr.py`, peft `tuners/lokr/layer.py`): the weight delta is a Kronecker
// product,
//
//     ΔW = scale · w1 ⊗ w2,   w1 = lokr_w1 or lokr_w1_a·lokr_w1_b   [a, b]
//                             w2 = lokr_w2 or lokr_w2_a·lokr_w2_b   [c, d(·k·k)]
//                                  or Tucker: Σ_ij lokr_t2[i, j]·w2_a[i, p]·w2_b[j, q]   [c, d, k, k]
//
// with out = a·c, in·k·k = b·d·k·k. The scale is α/r where r is the rank of a decomposed factor
// (w1_b's, else w2_b's first dimension), and 1 when both factors are full (A1111 `network_lokr.py`,
// LyCORIS: "if use_w1 and use_w2: alpha = lora_dim").
import TensorCore

public struct LoKrFactors: AdapterFactors {
    public static let kind = AdapterKind.lokr
    public static let suffixes = ["lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"]
    public var tensors: [String: Tensor]
    public var alpha: Float?

    public init(tensors: [String: Tensor], alpha: Float?) throws {
        let w1 = tensors["lokr_w1"] != nil || (tensors["lokr_w1_a"] != nil && tensors["lokr_w1_b"] != nil)
        let w2 = tensors["lokr_w2"] != nil || (tensors["lokr_w2_a"] != nil && tensors["lokr_w2_b"] != nil)
        guard w1, w2 else {
            throw AdapterFactorsError("a LoKr module needs lokr_w1 (or lokr_w1_a and lokr_w1_b) and lokr_w2 (or lokr_w2_a and lokr_w2_b); has \(FactorAlgebra.describe(tensors))")
        }
        for (key, t) in tensors where key != "lokr_t2" && key != "lokr_w2" && t.rank != 2 {
            throw AdapterFactorsError("LoKr \(key) must be a matrix, has shape \(t.shape)")
        }
        self.tensors = tensors
        self.alpha = alpha
    }

    /// The rank dividing α, nil when both factors are full (then the scale is 1).
    var decomposedRank: Int? { (tensors["lokr_w1_b"] ?? tensors["lokr_w2_b"])?.shape[0] }
    public var rank: Int {
        decomposedRank ?? min(tensors["lokr_w1"]?.shape.min() ?? 0, tensors["lokr_w2"]?.shape.min() ?? 0)
    }
    public var parameterCount: Int { tensors.values.reduce(0) { $0 + $1.count } }
    var scale: Float { decomposedRank.map { r in (alpha ?? Float(r)) / Float(r) } ?? 1 }

    func w1() throws -> Tensor {
        if let w = tensors["lokr_w1"] { return w }
        let a = tensors["lokr_w1_a"]!, b = tensors["lokr_w1_b"]!
        guard a.shape[1] == b.shape[0] else { throw AdapterFactorsError("lokr_w1_a \(a.shape) · lokr_w1_b \(b.shape) do not chain") }
        return try TensorCore.matmul(a, b)
    }

    /// w2 as a matrix [c, d·k·k].
    func w2() throws -> Tensor {
        if let w = tensors["lokr_w2"] { return w.rowMatrix }
        let a = tensors["lokr_w2_a"]!, b = tensors["lokr_w2_b"]!
        if let t = tensors["lokr_t2"] { return try FactorAlgebra.tucker(t, a, b).rowMatrix }
        guard a.shape[1] == b.shape[0] else { throw AdapterFactorsError("lokr_w2_a \(a.shape) · lokr_w2_b \(b.shape) do not chain") }
        return try TensorCore.matmul(a, b)
    }

    /// The shapes of w1 [a, b] and w2 [c, d·k·k] without computing them.
    var factorShapes: (w1: [Int], w2: [Int]) {
        let s1 = tensors["lokr_w1"]?.shape ?? [tensors["lokr_w1_a"]!.shape[0], tensors["lokr_w1_b"]!.shape[1]]
        let s2: [Int]
        if let w = tensors["lokr_w2"] {
            s2 = [w.shape[0], w.count / max(w.shape[0], 1)]
        } else if let t = tensors["lokr_t2"] {
            s2 = [tensors["lokr_w2_a"]!.shape[1], tensors["lokr_w2_b"]!.shape[1] * t.shape[2...].reduce(1, *)]
        } else {
            s2 = [tensors["lokr_w2_a"]!.shape[0], tensors["lokr_w2_b"]!.shape[1]]
        }
        return (s1, s2)
    }

    public func misfit(base: [Int]) -> String? {
        let (s1, s2) = factorShapes
        guard s1.count == 2, s2.count == 2, s1[0] * s2[0] == base[0], s1[1] * s2[1] == base.dropFirst().reduce(1, *) else {
            return "LoKr factors \(s1) ⊗ \(s2) do not give \(base)"
        }
        return nil
    }

    public func weightDelta(base: [Int]) throws -> Tensor {
        if let reason = misfit(base: base) { throw AdapterFactorsError(reason) }
        return Elementwise.scale(FactorAlgebra.kron(try w1(), try w2()), by: scale).reshapedUnchecked(base)
    }

    public var fileTensors: [(suffix: String, tensor: Tensor)] {
        Self.suffixes.compactMap { s in tensors[s].map { (s, $0) } }
    }
}
