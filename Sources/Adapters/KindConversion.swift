// Adapters of any kind as LoRA: the best rank-k approximation of a module's weight delta ΔW (LoHa, LoKr) or of
// a weighted sum of several adapters' ΔW, by truncated SVD, stating the Frobenius energy kept. A LoHa or LoKr
// ΔW has no low-rank factors to reuse (a Hadamard or Kronecker product), so it is formed whole and its range
// found by a randomized range finder (Halko, Martinsson & Tropp 2011: Gaussian test matrix, two power
// iterations, Float GEMMs), then the small projected matrix goes through the Double QR + Jacobi SVD of
// `LowRankSVD.swift`. When k + 16 reaches the smaller side of ΔW the SVD is exact. The kept energy is
// Σσ²(kept) / ‖ΔW‖²_F with ‖ΔW‖_F computed directly, so it never overstates what is kept.
// DoRA modules are refused: their ΔW depends on the base weight (fuse them into a base instead).
import TensorCore

extension LoRAAlgebra {
    /// `base(m)`: the checkpoint shape of module m's layer ([out, in] or [out, in, k, k]); LoHa / LoKr factors
    /// do not tell a 3×3 convolution from a linear layer, so the model's shapes are needed for them.
    public typealias BaseShapes = (LoRAModuleWeights) -> [Int]?

    /// Each module's ΔW truncated to its `rank` largest singular values as a LoRA pair (up = U_k·√Σ_k,
    /// down = √Σ_k·V_kᵀ, α = k). LoRA modules take the exact path of `resize(_:rank:)`.
    public static func resize(_ file: LoRAFile, rank: Int, baseShapes: BaseShapes) throws -> Resized {
        guard rank > 0 else { throw AdaptersError.invalidRequest("the new rank must be positive, got \(rank)") }
        var out: [LoRAModuleWeights] = []
        var kept = 0.0, total = 0.0
        var worst = (name: "", energy: 1.0)
        for m in file.modules {
            let (module, k, t): (LoRAModuleWeights, Double, Double)
            if m.kind == .lora {
                var one = file
                one.modules = [m]
                let r = try resize(one, rank: rank)
                let e = squaredNorm(try m.factors.weightDelta(base: [m.up.shape[0]] + Array(m.down.shape.dropFirst())))
                (module, k, t) = (r.modules[0], r.keptEnergy * e, e)
            } else {
                let base = try shape(of: m, file: file.path, baseShapes)
                (module, k, t) = try lowRank(delta(of: m, base: base, file: file.path), base: base, rank: rank,
                                             component: m.component, name: m.name)
            }
            out.append(module)
            kept += k
            total += t
            if t > 0, k / t < worst.energy { worst = (m.name, k / t) }
        }
        return Resized(modules: out, keptEnergy: total > 0 ? kept / total : 1, worstModule: worst)
    }

    /// Σ w_i·ΔW_i of adapters of any kinds, per module (identified across kohya and dotted spellings), as LoRA
    /// pairs of rank ≤ `rank`. The dotted name is kept when some input has it.
    public static func merge(_ inputs: [(file: LoRAFile, weight: Float)], rank: Int, baseShapes: BaseShapes) throws -> Resized {
        guard rank > 0 else { throw AdaptersError.invalidRequest("the merged rank must be positive, got \(rank)") }
        var order: [String] = []
        var groups: [String: [(LoRAModuleWeights, Float, String)]] = [:]
        for (file, w) in inputs {
            for m in file.modules {
                let id = m.component.rawValue + ":" + m.name.replacingOccurrences(of: ".", with: "_")
                if groups[id] == nil { order.append(id) }
                groups[id, default: []].append((m, w, file.path))
            }
        }
        var out: [LoRAModuleWeights] = []
        var kept = 0.0, total = 0.0
        var worst = (name: "", energy: 1.0)
        for id in order {
            let parts = groups[id]!
            let name = parts.map(\.0.name).first { $0.contains(".") } ?? parts[0].0.name
            let (first, _, path) = parts[0]
            let base = try shape(of: first, file: path, baseShapes)
            var sum = Tensor(zeros: base)
            for (m, w, file) in parts {
                if let reason = m.misfit(base: base) {
                    throw AdaptersError.incompleteModule(file: file, module: m.name, reason: "inputs disagree on shapes: \(reason)")
                }
                sum = try Elementwise.axpy(w, delta(of: m, base: base, file: file), sum)
            }
            let (module, k, t) = try lowRank(sum, base: base, rank: rank, component: first.component, name: name)
            out.append(module)
            kept += k
            total += t
            if t > 0, k / t < worst.energy { worst = (name, k / t) }
        }
        return Resized(modules: out, keptEnergy: total > 0 ? kept / total : 1, worstModule: worst)
    }

    /// The layer shape of a module: a LoRA pair's own, else `baseShapes`; an error naming the module otherwise.
    static func shape(of m: LoRAModuleWeights, file: String, _ baseShapes: BaseShapes) throws -> [Int] {
        if let s = baseShapes(m) { return s }
        if m.kind == .lora { return [m.up.shape[0]] + Array(m.down.shape.dropFirst()) }
        throw AdaptersError.invalidRequest("\(file): '\(m.name)' is a \(m.kind.rawValue) module, whose layer shape (a 3×3 "
            + "convolution or a linear layer) only the base model tells; give --pipeline DIR")
    }

    /// ΔW of a module in checkpoint layout; DoRA is refused with the reason.
    static func delta(of m: LoRAModuleWeights, base: [Int], file: String) throws -> Tensor {
        guard m.kind != .dora else {
            throw AdaptersError.invalidRequest("\(file): '\(m.name)' is a DoRA module: its weight delta depends on the base "
                + "weight, so it has no LoRA form of its own; fuse it into the base instead (lora merge --into-base)")
        }
        do {
            return try m.factors.weightDelta(base: base)
        } catch let error as AdapterFactorsError {
            throw AdaptersError.incompleteModule(file: file, module: m.name, reason: error.description)
        }
    }

    static func squaredNorm(_ t: Tensor) -> Double { t.scalars.reduce(0) { $0 + Double($1) * Double($1) } }

    /// The best rank-`rank` LoRA pair of ΔW (checkpoint shape `base`), its kept energy and ‖ΔW‖²_F.
    static func lowRank(_ delta: Tensor, base: [Int], rank: Int, component: ModelComponent,
                        name: String) throws -> (LoRAModuleWeights, Double, Double) {
        let m = base[0], n = delta.count / max(m, 1)
        let total = squaredNorm(delta)
        let (u, s, v) = try truncatedSVD(delta.reshapedUnchecked([m, n]), rank: rank)
        let k = min(rank, s.count)
        let kept = s.prefix(k).reduce(0) { $0 + $1 * $1 }
        var up = Tensor(zeros: [m, k]), down = Tensor(zeros: [k, n])
        up.withUnsafeMutableBufferPointer { p in
            for i in 0..<m { for j in 0..<k { p[i * k + j] = Float(u[i, j] * s[j].squareRoot()) } }
        }
        down.withUnsafeMutableBufferPointer { p in
            for j in 0..<k { for c in 0..<n { p[j * n + c] = Float(s[j].squareRoot() * v[c, j]) } }
        }
        let downShape = [k] + base.dropFirst(), upShape = base.count == 4 ? [m, k, 1, 1] : [m, k]
        let module = LoRAModuleWeights(component: component, name: name, down: down.reshapedUnchecked(downShape),
                                       up: up.reshapedUnchecked(upShape), alpha: Float(k))
        return (module, min(kept, total), total)
    }

    /// The leading singular triplets of a matrix d [m, n]: U [m, l], σ (l, decreasing), V [n, l] with l ≥ rank
    /// (exact when l reaches min(m, n)).
    static func truncatedSVD(_ d: Tensor, rank: Int) throws -> (u: Matrix, s: [Double], v: Matrix) {
        let m = d.shape[0], n = d.shape[1], small = min(m, n)
        func double(_ t: Tensor) -> Matrix { Matrix(rows: t.shape[0], cols: t.shape[1], data: t.scalars.map(Double.init)) }
        func float(_ x: Matrix) throws -> Tensor { try Tensor(shape: [x.rows, x.cols], scalars: x.data.map(Float.init)) }
        func identity(_ k: Int) -> Matrix {
            var i = Matrix(rows: k, cols: k)
            for j in 0..<k { i[j, j] = 1 }
            return i
        }
        let l = min(small, rank + 16)
        if l == small {
            return m <= n ? lowRankSVD(b: identity(m), a: double(d)) : lowRankSVD(b: double(d), a: identity(n))
        }
        var random = PhiloxRandom(seed: 0x5eed)
        var y = try TensorCore.matmul(d, random.normal(shape: [n, l]))                                  // [m, l]
        for _ in 0..<2 {
            let q = try float(thinQR(double(y)).q)
            let z = try float(thinQR(double(try TensorCore.matmul(d, q, transposeA: true))).q)          // [n, l]
            y = try TensorCore.matmul(d, z)
        }
        let q = thinQR(double(y)).q                                                                      // [m, l]
        let b = try TensorCore.matmul(try float(q), d, transposeA: true)                                 // [l, n]
        return lowRankSVD(b: q, a: double(b))
    }
}
