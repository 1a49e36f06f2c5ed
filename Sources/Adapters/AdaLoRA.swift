// AdaLoRA (Zhang et al., 2023; peft `tuners/adalora`): each adapted linear layer holds an SVD-form triplet
// ΔW = (α / (r + 1e-5)) · B·diag(E)·A (`lora_A` [r, in], `lora_E` [r], `lora_B` [out, r]), and a rank allocator
// moves the budget of triplets between layers during training:
//
//   - importance of every entry: s = |w · ∂L/∂w|, smoothed Ī = β₁·Ī + (1 − β₁)·s, uncertainty
//     Ū = β₂·Ū + (1 − β₂)·|s − Ī|, score Ī·Ū; a triplet's score is E's plus the mean of its A row and of its
//     B column (peft `RankAllocator._element_score`, `mask_to_budget`);
//   - budget: init_r per layer until `tinit`, then cubic down to target_r per layer at total_step − tfinal
//     (`budget_schedule`); every `deltaT` steps the lowest-scoring triplets over all layers get E = 0;
//   - at step total_step − tfinal the final mask is taken and kept (E re-masked after every later step);
//   - orthogonal regularisation of A and B: weight · mean over A (‖A·Aᵀ − I‖_F) and B (‖Bᵀ·B − I‖_F), whose
//     gradient `orthogonalRegularization` adds to A's and B's.
// The saved adapter is a plain LoRA with a rank per module (the kept triplets: down = E ⊙ A rows, up = B
// columns), which every loader reads.
import Autograd
import TensorCore

/// peft `AdaLoraConfig`'s schedule and allocator settings.
public struct AdaLoRASettings: Codable, Equatable, Sendable {
    public var initialRank: Int
    public var targetRank: Int
    public var tinit: Int
    public var tfinal: Int
    public var deltaT: Int
    public var totalSteps: Int
    public var beta1: Float
    public var beta2: Float
    public var orthogonalWeight: Float

    public init(initialRank: Int = 12, targetRank: Int = 8, tinit: Int = 0, tfinal: Int = 0, deltaT: Int = 1,
                totalSteps: Int, beta1: Float = 0.85, beta2: Float = 0.85, orthogonalWeight: Float = 0.5) {
        self.initialRank = initialRank
        self.targetRank = targetRank
        self.tinit = tinit
        self.tfinal = tfinal
        self.deltaT = deltaT
        self.totalSteps = totalSteps
        self.beta1 = beta1
        self.beta2 = beta2
        self.orthogonalWeight = orthogonalWeight
    }

    /// Why the settings cannot run, or nil.
    public var problem: String? {
        if targetRank < 1 || initialRank < targetRank { return "AdaLoRA needs 1 ≤ target rank ≤ rank (\(targetRank), \(initialRank))" }
        if totalSteps - tfinal <= tinit { return "AdaLoRA needs tinit < total steps − tfinal (\(tinit), \(totalSteps), \(tfinal))" }
        if deltaT < 1 { return "AdaLoRA's deltaT must be ≥ 1" }
        return nil
    }
}

/// The rank allocator of one AdaLoRA adapter over its layers (peft `RankAllocator` with
/// `AdaLoraModel.update_and_allocate`).
public final class AdaLoRAAllocator {
    public let settings: AdaLoRASettings
    /// The adapter's triplets by layer path.
    public let layers: [(path: String, pair: LoRAPair)]
    private var averageImportance: [ObjectIdentifier: Tensor] = [:]
    private var averageUncertainty: [ObjectIdentifier: Tensor] = [:]
    /// The final mask (kept triplets per layer), once taken.
    public private(set) var finalMask: [String: [Bool]]?

    /// The AdaLoRA pairs of adapter `name` in `stack`.
    public init(stack: AdapterStack, name: String, settings: AdaLoRASettings) throws {
        if let problem = settings.problem { throw AdaptersError.invalidRequest(problem) }
        layers = stack.pairs(of: name).filter { $0.pair.singularValues != nil }.map { ($0.path, $0.pair) }
        guard !layers.isEmpty else { throw AdaptersError.invalidRequest("adapter '\(name)' has no AdaLoRA layers") }
        self.settings = settings
    }

    var initialBudget: Int { layers.reduce(0) { $0 + $1.pair.rank } }
    var targetBudget: Int { settings.targetRank * layers.count }

    /// The number of triplets kept at `step`, and whether to mask at it.
    public func budget(at step: Int) -> (budget: Int, mask: Bool) {
        let s = settings
        if step <= s.tinit { return (initialBudget, false) }
        if step > s.totalSteps - s.tfinal { return (targetBudget, true) }
        let coefficient = 1 - Double(step - s.tinit) / Double(s.totalSteps - s.tfinal - s.tinit)
        let budget = Int(Double(initialBudget - targetBudget) * coefficient * coefficient * coefficient + Double(targetBudget))
        return (budget, step % s.deltaT == 0)
    }

    /// Call after the optimiser's update of step `step` (0-based), while the gradients are still there.
    public func update(step: Int) throws {
        let final = settings.totalSteps - settings.tfinal
        if step < final {
            updateImportance()
            let (budget, mask) = budget(at: step)
            if mask { try maskToBudget(budget) }
        } else if step == final {
            finalMask = try maskToBudget(budget(at: step).budget)
            averageImportance = [:]
            averageUncertainty = [:]
        } else if let finalMask {
            for (path, pair) in layers { apply(finalMask[path]!, to: pair) }
        }
    }

    private var parameters: [Variable] { layers.flatMap { [$0.pair.down, $0.pair.up, $0.pair.singularValues!] } }

    private func updateImportance() {
        let (b1, b2) = (settings.beta1, settings.beta2)
        for p in parameters {
            let id = ObjectIdentifier(p), count = p.value.count
            let grad = p.grad?.scalars ?? [Float](repeating: 0, count: count), w = p.value.scalars
            var avg = averageImportance[id]?.scalars ?? [Float](repeating: 0, count: count)
            var unc = averageUncertainty[id]?.scalars ?? [Float](repeating: 0, count: count)
            for j in 0..<count {
                let s = abs(w[j] * grad[j])
                avg[j] = b1 * avg[j] + (1 - b1) * s
                unc[j] = b2 * unc[j] + (1 - b2) * abs(s - avg[j])
            }
            averageImportance[id] = Tensor(shape: p.shape) { $0.baseAddress!.update(from: avg, count: count) }
            averageUncertainty[id] = Tensor(shape: p.shape) { $0.baseAddress!.update(from: unc, count: count) }
        }
    }

    /// Ī·Ū of a parameter (zeros before any update).
    private func score(_ p: Variable) -> [Float] {
        let id = ObjectIdentifier(p)
        guard let i = averageImportance[id]?.scalars, let u = averageUncertainty[id]?.scalars else {
            return [Float](repeating: 0, count: p.value.count)
        }
        return zip(i, u).map { $0 * $1 }
    }

    /// Each triplet's score: E's + (mean of its A row + mean of its B column).
    private func tripletScores(_ pair: LoRAPair) -> [Float] {
        let r = pair.rank, a = score(pair.down), b = score(pair.up), e = score(pair.singularValues!)
        let inF = a.count / r, outF = b.count / r
        return (0..<r).map { i in
            let rowA = (0..<inF).reduce(Float(0)) { $0 + a[i * inF + $1] } / Float(inF)
            let colB = (0..<outF).reduce(Float(0)) { $0 + b[$1 * r + i] } / Float(outF)
            return e[i] + (rowA + colB)
        }
    }

    /// Masks (E = 0) every triplet whose score is at most the (initial − budget)-th smallest; returns the kept ones.
    @discardableResult
    private func maskToBudget(_ budget: Int) throws -> [String: [Bool]] {
        let scores = layers.map { tripletScores($0.pair) }
        let k = initialBudget - budget
        let threshold = k > 0 ? scores.flatMap { $0 }.sorted()[k - 1] : -Float.infinity
        var kept: [String: [Bool]] = [:]
        for ((path, pair), s) in zip(layers, scores) {
            kept[path] = s.map { $0 > threshold }
            apply(kept[path]!, to: pair)
        }
        return kept
    }

    private func apply(_ keep: [Bool], to pair: LoRAPair) {
        pair.singularValues!.value.withUnsafeMutableBufferPointer { e in
            for (i, k) in keep.enumerated() where !k { e[i] = 0 }
        }
    }

    /// The orthogonal regularisation weight · mean(‖A·Aᵀ − I‖_F, ‖Bᵀ·B − I‖_F) over every A and B; its gradient is
    /// added to theirs (call after `backward`). Returns the term's value.
    @discardableResult
    public func orthogonalRegularization() throws -> Float {
        let w = settings.orthogonalWeight
        guard w > 0 else { return 0 }
        let count = Float(2 * layers.count)
        var total: Float = 0
        for (_, pair) in layers {
            for (p, isA) in [(pair.down, true), (pair.up, false)] {
                // A [r, in]: C = A·Aᵀ − I, ∂‖C‖/∂A = 2·C·A/‖C‖. B [out, r]: C = Bᵀ·B − I, ∂‖C‖/∂B = 2·B·C/‖C‖.
                var c = try TensorCore.matmul(p.value, p.value, transposeA: !isA, transposeB: isA)
                let n = c.shape[0]
                c.withUnsafeMutableBufferPointer { for i in 0..<n { $0[i * n + i] -= 1 } }
                let norm = c.scalars.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
                total += norm
                guard norm > 0 else { continue }
                let g = isA ? try TensorCore.matmul(c, p.value) : try TensorCore.matmul(p.value, c)
                let scaled = Elementwise.scale(g, by: 2 * w / count / norm)
                p.grad = try p.grad.map { try Elementwise.add($0, scaled) } ?? scaled
            }
        }
        return w * total / count
    }

    /// The adapter as a plain LoRA with a rank per layer: the triplets with E ≠ 0, down = E ⊙ A rows,
    /// up = B columns, α = the kept rank × α / (r + 1e-5) (so a loader's α/rank gives AdaLoRA's scale).
    public func export(component: ModelComponent, index: ModuleIndex) -> [LoRAModuleWeights] {
        layers.compactMap { path, pair in
            let e = pair.singularValues!.value.scalars, r = pair.rank
            let kept = (0..<r).filter { e[$0] != 0 }
            guard !kept.isEmpty else { return nil }
            let a = pair.down.value.scalars, b = pair.up.value.scalars
            let inF = a.count / r, outF = b.count / r, k = kept.count
            let down = Tensor(shape: [k, inF]) { d in
                for (j, i) in kept.enumerated() { for c in 0..<inF { d[j * inF + c] = e[i] * a[i * inF + c] } }
            }
            let up = Tensor(shape: [outF, k]) { u in
                for o in 0..<outF { for (j, i) in kept.enumerated() { u[o * k + j] = b[o * r + i] } }
            }
            return LoRAModuleWeights(component: component, name: index.fileName(path), down: down, up: up,
                                     alpha: Float(k) * pair.scaling)
        }
    }

    /// Kept rank per layer (for the report of where the budget went).
    public var ranks: [(path: String, rank: Int)] {
        layers.map { ($0.path, $0.pair.singularValues!.value.scalars.filter { $0 != 0 }.count) }
    }
}

extension AdapterStack {
    /// Adds a trainable AdaLoRA adapter (rank `rank` triplets, peft's init) on every Linear layer matching
    /// `targets` (peft's AdaLoRA adapts linear layers; matching convolutions are left out, and targets with
    /// no linear layer are refused). Returns the number of layers.
    @discardableResult
    public func addTrainableAdaLoRA(name: String, rank: Int, alpha: Float, targets: LoRATargets,
                                    random: inout PhiloxRandom) throws -> Int {
        guard !adapterNames.contains(name) else { throw AdaptersError.duplicateAdapter(name) }
        guard rank > 0 else { throw AdaptersError.invalidRequest("AdaLoRA rank must be positive, got \(rank)") }
        let paths = index.shapes.keys.filter { targets.matches($0) && index.shapes[$0]!.count == 2 }.sorted()
        guard !paths.isEmpty else {
            throw AdaptersError.invalidRequest("no linear \(component.rawValue) layer matches the targets "
                + "\(targets.patterns.joined(separator: ", ")) (AdaLoRA adapts linear layers only)")
        }
        for path in paths { branch(at: path)?.addTrainableSVDPair(name: name, rank: rank, alpha: alpha, random: &random) }
        registerTrainable(name)
        return paths.count
    }
}
