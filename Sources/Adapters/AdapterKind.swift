// Adapter kinds: what one module of an adapter stores, and what it means for the layer it sits on.
//
// Every kind answers the same questions (`AdapterFactors`): does it fit a base weight, what weight delta
// ΔW (checkpoint layout, its own scale included) it adds, and which tensors it writes under which key
// suffixes. A layer applies a LoRA pair as two small maps (`LoRABranch`, trainable); every other kind is
// applied through its ΔW (`WeightDeltaPair`), as A1111, ComfyUI and stable-diffusion.cpp do for LyCORIS
// kinds. A new kind is one file: a type conforming to `AdapterFactors`, listed in `AdapterKind.types`.
import TensorCore

/// The kinds of adapter module the package reads.
public enum AdapterKind: String, Sendable, CaseIterable {
    /// Low-rank pair down/up (LoRA, LoCon / LoRA-C on convolutions).
    case lora
    /// LyCORIS LoHa: Hadamard product of two low-rank products.
    case loha
    /// LyCORIS LoKr: Kronecker product of two (optionally low-rank) factors.
    case lokr
    /// DoRA: a LoRA pair and a magnitude per output channel (weight-decomposed LoRA).
    case dora

    /// The conforming type of each kind read by key suffix (LoRA is read by `LoRAKey`'s own table).
    static let types: [any AdapterFactors.Type] = [LoHaFactors.self, LoKrFactors.self]
}

/// One module's tensors of one adapter kind, in checkpoint layout.
public protocol AdapterFactors: Sendable {
    static var kind: AdapterKind { get }
    /// The tensor-name suffixes (after `<module>.`) this kind stores, as LyCORIS / kohya files spell them.
    static var suffixes: [String] { get }
    /// From the module's tensors by suffix and its alpha; throws a reason when a tensor is missing or misshapen.
    init(tensors: [String: Tensor], alpha: Float?) throws
    /// α as stored, nil when the file has none.
    var alpha: Float? { get }
    /// The rank that divides α (kinds without one report their factors' smaller side).
    var rank: Int { get }
    /// Number of stored scalars (to compare kinds per parameter).
    var parameterCount: Int { get }
    /// Why the module does not fit a base weight of checkpoint shape `base` ([out, in] or [out, in, k, k]), or nil.
    func misfit(base: [Int]) -> String?
    /// ΔW with the kind's own scale (α/r …) applied, in the base weight's checkpoint shape.
    func weightDelta(base: [Int]) throws -> Tensor
    /// The tensors to write, by suffix (`.alpha` is written beside them by the writer).
    var fileTensors: [(suffix: String, tensor: Tensor)] { get }
    /// Whether ΔW depends on the base weight (DoRA); then `weightDelta(baseWeight:)` gives it.
    var needsBaseWeight: Bool { get }
    /// ΔW for the base weight itself (checkpoint layout); kinds whose ΔW does not depend on it use its shape.
    func weightDelta(baseWeight: Tensor) throws -> Tensor
}

extension AdapterFactors {
    public var needsBaseWeight: Bool { false }
    public func weightDelta(baseWeight: Tensor) throws -> Tensor { try weightDelta(base: baseWeight.shape) }
}

/// A reason an adapter module cannot be read or applied (turned into an `AdaptersError` with file and module).
public struct AdapterFactorsError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// LoRA as a kind: down [r, in(, k, k)], up [out, r(, 1, 1)]; ΔW = (α/r)·up·down.
public struct LoRAFactors: AdapterFactors {
    public static let kind = AdapterKind.lora
    public static let suffixes = ["lora_down.weight", "lora_up.weight"]
    public var down: Tensor
    public var up: Tensor
    public var alpha: Float?

    public init(down: Tensor, up: Tensor, alpha: Float?) {
        self.down = down
        self.up = up
        self.alpha = alpha
    }

    public init(tensors: [String: Tensor], alpha: Float?) throws {
        guard let down = tensors["lora_down.weight"], let up = tensors["lora_up.weight"] else {
            throw AdapterFactorsError("a LoRA module needs lora_down.weight and lora_up.weight")
        }
        self.init(down: down, up: up, alpha: alpha)
    }

    public var rank: Int { down.shape.first ?? 0 }
    public var parameterCount: Int { down.count + up.count }
    public func misfit(base: [Int]) -> String? { loraMisfit(base: base, down: down.shape, up: up.shape) }

    public func weightDelta(base: [Int]) throws -> Tensor {
        let r = rank, inner = down.count / max(r, 1)
        let product = try TensorCore.matmul(up.reshapedUnchecked([up.shape[0], r]), down.reshapedUnchecked([r, inner]))
        return Elementwise.scale(product, by: (alpha ?? Float(r)) / Float(r)).reshapedUnchecked(base)
    }

    public var fileTensors: [(suffix: String, tensor: Tensor)] { [("lora_down.weight", down), ("lora_up.weight", up)] }
}

// MARK: Shared algebra of the LyCORIS kinds

extension Tensor {
    /// The tensor as a matrix of `shape[0]` rows (the rest flattened).
    var rowMatrix: Tensor { reshapedUnchecked([shape[0], count / Swift.max(shape[0], 1)]) }
}

enum FactorAlgebra {
    /// Tucker rebuild of a k×k convolution factor: out[p, q, k, l] = Σ_ij t[i, j, k, l] · wa[i, p] · wb[j, q]
    /// (t [r, r, kh, kw], wa [r, P], wb [r, Q]) — LyCORIS `rebuild_tucker`, peft `make_weight_cp`.
    static func tucker(_ t: Tensor, _ wa: Tensor, _ wb: Tensor) throws -> Tensor {
        guard t.rank == 4, wa.rank == 2, wb.rank == 2, t.shape[0] == wa.shape[0], t.shape[1] == wb.shape[0] else {
            throw AdapterFactorsError("Tucker core \(t.shape) does not fit factors \(wa.shape) / \(wb.shape)")
        }
        let r1 = t.shape[0], r2 = t.shape[1], kk = t.shape[2] * t.shape[3], p = wa.shape[1], q = wb.shape[1]
        // t as [kk, r1, r2] per spatial position, then waᵀ·t_kl·wb.
        let ts = t.scalars
        var out = [Float](repeating: 0, count: p * q * kk)
        for s in 0..<kk {
            var core = [Float](repeating: 0, count: r1 * r2)
            for i in 0..<r1 { for j in 0..<r2 { core[i * r2 + j] = ts[(i * r2 + j) * kk + s] } }
            let left = try TensorCore.matmul(wa, Tensor(shape: [r1, r2], scalars: core), transposeA: true)   // [p, r2]
            let m = try TensorCore.matmul(left, wb).scalars                                                  // [p, q]
            for a in 0..<p { for b in 0..<q { out[(a * q + b) * kk + s] = m[a * q + b] } }
        }
        return try Tensor(shape: [p, q, t.shape[2], t.shape[3]], scalars: out)
    }

    /// Kronecker product of matrices a [m, n] and b [p, q]: [m·p, n·q].
    static func kron(_ a: Tensor, _ b: Tensor) -> Tensor {
        let m = a.shape[0], n = a.shape[1], p = b.shape[0], q = b.shape[1]
        let av = a.scalars, bv = b.scalars
        return Tensor(shape: [m * p, n * q]) { out in
            for i in 0..<m {
                for j in 0..<n {
                    let x = av[i * n + j]
                    for k in 0..<p {
                        let row = (i * p + k) * n * q + j * q
                        for l in 0..<q { out[row + l] = x * bv[k * q + l] }
                    }
                }
            }
        }
    }

    /// `shape` as text for messages.
    static func describe(_ tensors: [String: Tensor]) -> String {
        tensors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.shape)" }.joined(separator: ", ")
    }
}
