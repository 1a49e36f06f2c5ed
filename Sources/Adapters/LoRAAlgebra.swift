// Operations on adapter files without a model: exact merging by concatenating ranks, resizing to a lower
// rank by SVD of B·A, and baking adapters into a base state dict.
import TensorCore

public enum LoRAAlgebra {
    /// Merges adapters exactly: for every module, down = [A_1; A_2; …] and up = [s_1·B_1, s_2·B_2, …] with
    /// s_i = w_i·α_i/r_i and α = the summed rank, so B·A·(α/r) = Σ w_i·(α_i/r_i)·B_i·A_i. Modules are
    /// identified across kohya and dotted spellings; the dotted name is kept when some input has it.
    public static func merge(_ inputs: [(file: LoRAFile, weight: Float)]) throws -> [LoRAModuleWeights] {
        var order: [String] = []
        var groups: [String: [(LoRAModuleWeights, Float)]] = [:]
        for (file, w) in inputs {
            if let other = file.modules.first(where: { $0.kind != .lora }) {
                throw AdaptersError.invalidRequest("\(file.path): '\(other.name)' is a \(other.kind.rawValue) module; an exact merge "
                    + "concatenates LoRA pairs only (give --rank R to merge weight deltas by SVD)")
            }
            for m in file.modules {
                let id = m.component.rawValue + ":" + m.name.replacingOccurrences(of: ".", with: "_")
                if groups[id] == nil { order.append(id) }
                groups[id, default: []].append((m, w))
            }
        }
        return try order.map { id in
            let parts = groups[id]!
            let name = parts.map(\.0.name).first { $0.contains(".") } ?? parts[0].0.name
            let convLike = parts.contains { $0.0.down.rank == 4 }
            var downs: [Tensor] = [], ups: [Tensor] = []
            for (m, w) in parts {
                downs.append(convLike && m.down.rank == 2 ? m.down.reshapedUnchecked(m.down.shape + [1, 1]) : m.down)
                let up = convLike && m.up.rank == 2 ? m.up.reshapedUnchecked(m.up.shape + [1, 1]) : m.up
                ups.append(Elementwise.scale(up, by: w * m.effectiveAlpha / Float(m.rank)))
            }
            let tail = Array(downs[0].shape.dropFirst())
            guard downs.allSatisfy({ Array($0.shape.dropFirst()) == tail }), Set(ups.map { $0.shape[0] }).count == 1 else {
                throw AdaptersError.incompleteModule(file: "merge", module: name,
                                                     reason: "inputs disagree on shapes: \(downs.map(\.shape)) / \(ups.map(\.shape))")
            }
            let down = concatRows(downs)                                           // [Σr, in(, k, k)]
            let up = transposeFirstTwo(concatRows(ups.map(transposeFirstTwo)))     // [out, Σr(, 1, 1)]
            return LoRAModuleWeights(component: parts[0].0.component, name: name, down: down, up: up,
                                     alpha: Float(down.shape[0]))
        }
    }

    /// The result of resizing: new modules and the Frobenius energy Σσ²(kept)/Σσ² overall and at worst.
    public struct Resized {
        public var modules: [LoRAModuleWeights]
        public var keptEnergy: Double
        public var worstModule: (name: String, energy: Double)
    }

    /// Each module's ΔW = (α/r)·B·A truncated to its `rank` largest singular values: up = U_r·√Σ_r,
    /// down = √Σ_r·V_rᵀ, α = rank (so the scale is 1). Modules already at or below `rank` keep their rank.
    public static func resize(_ file: LoRAFile, rank: Int) throws -> Resized {
        guard rank > 0 else { throw AdaptersError.invalidRequest("the new rank must be positive, got \(rank)") }
        if let other = file.modules.first(where: { $0.kind != .lora }) {
            throw AdaptersError.invalidRequest("\(file.path): '\(other.name)' is a \(other.kind.rawValue) module; resizing it "
                + "needs its layer's shape (resize(_:rank:baseShapes:))")
        }
        var out: [LoRAModuleWeights] = []
        var kept = 0.0, total = 0.0
        var worst = (name: "", energy: 1.0)
        for m in file.modules {
            let r = m.rank, outF = m.up.shape[0], inner = m.down.count / max(r, 1)
            let scale = Double(m.effectiveAlpha) / Double(r)
            let b = Matrix(rows: outF, cols: r, data: m.up.scalars.map { Double($0) * scale })
            let a = Matrix(rows: r, cols: inner, data: m.down.scalars.map(Double.init))
            let (u, s, v) = lowRankSVD(b: b, a: a)
            let k = min(rank, r)
            let e = s.reduce(0) { $0 + $1 * $1 }, ek = s.prefix(k).reduce(0) { $0 + $1 * $1 }
            total += e
            kept += ek
            if e > 0, ek / e < worst.energy { worst = (m.name, ek / e) }
            var up = Tensor(zeros: [outF, k]), down = Tensor(zeros: [k, inner])
            up.withUnsafeMutableBufferPointer { p in
                for i in 0..<outF { for j in 0..<k { p[i * k + j] = Float(u[i, j] * s[j].squareRoot()) } }
            }
            down.withUnsafeMutableBufferPointer { p in
                for j in 0..<k { for c in 0..<inner { p[j * inner + c] = Float(s[j].squareRoot() * v[c, j]) } }
            }
            let downShape = [k] + m.down.shape.dropFirst(), upShape = [outF, k] + m.up.shape.dropFirst(2)
            out.append(LoRAModuleWeights(component: m.component, name: m.name, down: down.reshapedUnchecked(downShape),
                                         up: up.reshapedUnchecked(upShape), alpha: Float(k)))
        }
        return Resized(modules: out, keptEnergy: total > 0 ? kept / total : 1, worstModule: worst)
    }

    /// Adds w·(α/r)·B·A of every resolved module of `component` to the `<path>.weight` tensors of a
    /// state dict (checkpoint layout). Refuses NaN/Inf results before changing anything.
    public static func fuse(into stateDict: inout [String: Tensor], _ adapters: [(ResolvedLoRA, Float)],
                            component: ModelComponent) throws {
        var updated: [String: Tensor] = [:]
        for (adapter, w) in adapters {
            for m in adapter.modules where m.component == component {
                let key = m.path + ".weight"
                guard let base = updated[key] ?? stateDict[key] else {
                    throw AdaptersError.invalidRequest("the base has no tensor '\(key)'")
                }
                let mw = m.weights
                var delta: Tensor
                if mw.kind == .lora {
                    let r = mw.rank, inner = mw.down.count / r
                    delta = try TensorCore.matmul(mw.up.reshapedUnchecked([mw.up.shape[0], r]), mw.down.reshapedUnchecked([r, inner]))
                    delta = Elementwise.scale(delta, by: w * mw.effectiveAlpha / Float(r)).reshapedUnchecked(base.shape)
                } else {
                    do {
                        // DoRA's ΔW is relative to the base weight itself, not to what earlier adapters made of it.
                        let original = stateDict[key] ?? base
                        delta = Elementwise.scale(try mw.factors.weightDelta(baseWeight: original), by: w)
                    } catch let error as AdapterFactorsError {
                        throw AdaptersError.incompleteModule(file: adapter.file.path, module: m.path, reason: error.description)
                    }
                }
                let sum = try Elementwise.add(base, delta)
                guard allFinite(sum) else { throw AdaptersError.nonFinite(adapter: adapter.file.path, module: m.path) }
                updated[key] = sum
            }
        }
        stateDict.merge(updated) { $1 }
    }

    /// Tensors stacked along the first dimension.
    static func concatRows(_ parts: [Tensor]) -> Tensor {
        let tail = Array(parts[0].shape.dropFirst())
        let rows = parts.reduce(0) { $0 + $1.shape[0] }
        var flat: [Float] = []
        flat.reserveCapacity(rows * tail.reduce(1, *))
        for p in parts { flat += p.scalars }
        return Tensor(shape: [rows] + tail) { $0.baseAddress!.update(from: flat, count: flat.count) }
    }

    /// Swaps the first two dimensions ([a, b, rest…] → [b, a, rest…]).
    static func transposeFirstTwo(_ t: Tensor) -> Tensor {
        let a = t.shape[0], b = t.shape[1], inner = t.count / max(a * b, 1)
        let src = t.scalars
        return Tensor(shape: [b, a] + t.shape.dropFirst(2)) { out in
            for i in 0..<a { for j in 0..<b { for k in 0..<inner { out[(j * a + i) * inner + k] = src[(i * b + j) * inner + k] } } }
        }
    }
}
