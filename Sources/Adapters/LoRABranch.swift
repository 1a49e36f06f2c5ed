// LoRA branches on Linear and Conv2d layers (LoRA, and LoRA-C / LoCon on convolutions):
//
//     y = base(x) + Σ_i w_i · (α_i / r_i) · up_i(down_i(dropout(x)))
//
// One branch per layer holds a list of low-rank pairs, one per loaded adapter, each with its own weight
// w_i; the base layer stays frozen. A Linear pair is down [r, in], up [out, r]; a convolution pair is a
// k×k `down` convolution in→r with the base layer's stride and padding and a 1×1 `up` convolution r→out.
// This is the scaling of peft `tuners/lora/layer.py` (`scaling = lora_alpha / r`, times the adapter weight
// of `set_adapters`) and of kohya `networks/lora.py` (`multiplier * alpha / lora_dim`).
import Autograd
import Foundation
import NN
import TensorCore

/// How a new adapter's `down` matrix is drawn; `up` always starts at zero, so a new adapter changes nothing.
public enum LoRAInit: String, Sendable, CaseIterable {
    /// Kaiming-uniform with a = √5 (PyTorch's Linear default, PEFT's default): U(±1/√fan_in).
    case kaimingUniform = "kaiming"
    /// Gaussian with std 1/r (diffusers' DreamBooth LoRA scripts).
    case gaussian
}

/// One adapter of any kind on one layer: its name, weight and state (`LoRAPair`, `WeightDeltaPair`).
public class LayerAdapterEntry {
    /// The adapter this entry belongs to.
    public let name: String
    /// The adapter's weight w (the multiplier of A1111's `<lora:name:w>`, diffusers' `set_adapters`).
    /// Per-image weights do not change it: they come with the call (`AdapterRowWeights`).
    public var weight: Float = 1
    public var isEnabled = true
    /// Whether the entry is baked into the base weight (it then adds nothing at run time).
    public internal(set) var isFused = false

    init(name: String) { self.name = name }

    /// The adapter kind.
    public var kind: AdapterKind { .lora }

    /// The batch items this entry adds to in the current call (those whose row weight is not 0) and every
    /// item's weight: `rowWeights` when the call gives them, else `weight` for all.
    func rows(batch: Int) throws -> (items: [Int], weights: [Float]) {
        guard let rowWeights else { return (Array(0..<batch), Array(repeating: weight, count: batch)) }
        guard rowWeights.count == batch else {
            throw AdaptersError.invalidRequest("adapter '\(name)' has \(rowWeights.count) row weights for a batch of \(batch)")
        }
        return ((0..<batch).filter { rowWeights[$0] != 0 }, rowWeights)
    }

    /// The per-batch-row weights of the current call (`AdapterRowWeights.current`), nil when the call
    /// gives none for this adapter (then `weight` applies to every row).
    var rowWeights: [Float]? { AdapterRowWeights.current?.rows[name] }

    /// Whether the pair can add anything (it is then attached to its layer).
    var isLive: Bool { isEnabled && !isFused }

    /// Whether the pair adds anything in the current call.
    var isActive: Bool {
        guard isLive else { return false }
        if let rows = rowWeights { return rows.contains { $0 != 0 } }
        return weight != 0
    }
}

/// One adapter's low-rank pair on one layer, with its weight and state.
public final class LoRAPair: LayerAdapterEntry {
    public let down: Variable    // Linear [r, in]; convolution [k, k, in, r] (HWIO)
    public let up: Variable      // Linear [out, r]; convolution [1, 1, r, out] (HWIO)
    public let alpha: Float

    /// DoRA's magnitude m [out] when the pair is trained as DoRA (nil: plain LoRA). The layer then gives
    /// bias + m/‖W + s·B·A‖ ⊙ (W·x + s·B·A·x) at weight 1, the norm per output channel and detached
    /// (peft `DoraLinearLayer` / `DoraConv2dLayer`); a weight w scales what it adds to the base output.
    public internal(set) var magnitude: Variable?
    /// AdaLoRA's singular values E [r] when the pair is trained as AdaLoRA (peft `SVDLinear`): the layer adds
    /// (α / (r + 1e-5)) · B·((A·x) ⊙ E); the rank allocator masks entries of E to zero.
    public internal(set) var singularValues: Variable?

    public var rank: Int { up.shape.count == 2 ? up.shape[1] : up.shape[2] }
    /// α / r (AdaLoRA: α / (r + 1e-5), as peft).
    public var scaling: Float { singularValues == nil ? alpha / Float(rank) : alpha / (Float(rank) + 1e-5) }
    public override var kind: AdapterKind { magnitude == nil ? .lora : .dora }

    init(name: String, down: Variable, up: Variable, alpha: Float) {
        self.down = down
        self.up = up
        self.alpha = alpha
        super.init(name: name)
    }
}

/// An adapter of another kind (LoHa, LoKr) on one layer, applied through its weight delta: the layer adds
/// w · ΔW·x (a linear map or a convolution with the base's stride and padding). ΔW is frozen.
public final class WeightDeltaPair: LayerAdapterEntry {
    /// The module's tensors as the file gave them (for fusing and export).
    public let factors: any AdapterFactors
    /// ΔW in the layer's layout: Linear [out, in]; convolution [k, k, in, out] (HWIO).
    public let delta: Variable

    init(name: String, factors: any AdapterFactors, delta: Variable) {
        self.factors = factors
        self.delta = delta
        super.init(name: name)
    }

    public override var kind: AdapterKind { type(of: factors).kind }
}

/// The adapters of one layer: shared logic of `LoRALinear` and `LoRAConv`, which override the
/// layer-specific hooks (host, base shape, down/up maps, checkpoint layout, attachment).
public class LoRABranch: LayerAdapter {
    public private(set) var pairs: [LoRAPair] = []
    /// Adapters of other kinds, applied through their weight deltas.
    public private(set) var deltaPairs: [WeightDeltaPair] = []
    /// Every adapter on the layer (LoRA pairs, then the others).
    public var entries: [LayerAdapterEntry] { pairs + deltaPairs }
    /// Dropout probability on the branch input while the host layer is in training mode.
    public var dropout: Float = 0
    /// Random source for dropout (explicit and seeded, like every random value).
    public var random: PhiloxRandom

    init(seed: UInt64) { random = PhiloxRandom(seed: seed) }

    /// The host layer (Linear or Conv2d) as a module.
    var host: Module? { nil }
    /// The host's base weight shape in checkpoint layout ([out, in] or [out, in, k, k]).
    public var baseShape: [Int] { [] }
    /// x → down(x) [..., r] and h → up(h) [..., out].
    func applyDown(_ x: Variable, _ pair: LoRAPair) throws -> Variable { x }
    func applyUp(_ h: Variable, _ pair: LoRAPair) throws -> Variable { h }
    /// (down, up) as stored in checkpoints, and back.
    func checkpointTensors(_ pair: LoRAPair) -> (down: Tensor, up: Tensor) { (pair.down.value, pair.up.value) }
    func makePair(name: String, down: Tensor, up: Tensor, alpha: Float) -> LoRAPair {
        LoRAPair(name: name, down: Variable(down), up: Variable(up), alpha: alpha)
    }
    /// x → x·ΔW for a weight delta in the layer's layout; a checkpoint-layout ΔW in that layout.
    func applyFull(_ x: Variable, _ delta: Variable) throws -> Variable { x }
    func layerLayout(_ checkpointDelta: Tensor) -> Tensor { checkpointDelta }
    /// The host's weight in checkpoint layout as it is without baked adapters (DoRA's ΔW depends on it).
    var baseWeight: Tensor? { nil }

    /// ΔW of other-kind factors for this layer, checkpoint layout.
    func otherDelta(_ factors: any AdapterFactors) throws -> Tensor {
        guard factors.needsBaseWeight else { return try factors.weightDelta(base: baseShape) }
        guard let w = baseWeight else { throw AdaptersError.invalidRequest("the layer of this branch no longer exists") }
        return try factors.weightDelta(baseWeight: w)
    }
    var isAttached: Bool { false }
    func setAttached(_ attached: Bool) {}

    // MARK: Forward

    /// Σ over active pairs of w · (α/r) · up(down(dropout(x))), each pair only on the rows it applies to, and
    /// the other kinds' w · ΔW·x. DoRA pairs in training need the base output: `added(to:input:)` adds them.
    public func delta(_ x: Variable) throws -> Variable {
        let input = try dropped(x)
        let batch = x.shape[0]
        var parts: [(rows: [Int]?, value: Variable)] = []
        for pair in pairs where pair.isActive && pair.magnitude == nil {
            guard let rowWeights = pair.rowWeights else {
                parts.append((nil, try applyUp(scale(projectDown(input, pair), by: pair.weight * pair.scaling), pair)))
                continue
            }
            guard rowWeights.count == batch else {
                throw AdaptersError.invalidRequest("adapter '\(pair.name)' has \(rowWeights.count) row weights for a batch of \(batch)")
            }
            let rows = rowWeights.indices.filter { rowWeights[$0] != 0 }
            let h = try projectDown(rows.count == batch ? input : selectRows(input, rows), pair)    // [n, ..., r]
            let scales = rows.map { rowWeights[$0] * pair.scaling }
            let perRow = Variable(try Tensor(shape: [rows.count] + Array(repeating: 1, count: h.shape.count - 1), scalars: scales))
            parts.append((rows.count == batch ? nil : rows, try applyUp(mul(h, perRow), pair)))
        }
        for pair in deltaPairs where pair.isActive {
            guard let rowWeights = pair.rowWeights else {
                parts.append((nil, scale(try applyFull(input, pair.delta), by: pair.weight)))
                continue
            }
            guard rowWeights.count == batch else {
                throw AdaptersError.invalidRequest("adapter '\(pair.name)' has \(rowWeights.count) row weights for a batch of \(batch)")
            }
            let rows = rowWeights.indices.filter { rowWeights[$0] != 0 }
            let d = try applyFull(rows.count == batch ? input : selectRows(input, rows), pair.delta)
            let perRow = Variable(try Tensor(shape: [rows.count] + Array(repeating: 1, count: d.shape.count - 1),
                                             scalars: rows.map { rowWeights[$0] }))
            parts.append((rows.count == batch ? nil : rows, try mul(d, perRow)))
        }
        if parts.isEmpty {   // nothing active: an exact zero of the output's shape
            if let pair = pairs.first { return scale(try applyUp(applyDown(input, pair), pair), by: 0) }
            if let pair = deltaPairs.first { return scale(try applyFull(input, pair.delta), by: 0) }
        }
        return try combineRows(parts, batch: batch)
    }

    /// y + Σ delta. Without gradients to record, each pair's up projection accumulates straight into the
    /// base output's storage (one GEMM with β = 1): no delta tensor, no extra pass. Each row's weight·α/r
    /// scales the small down output `h` and the GEMM runs with α = 1, so a batch row gets the same sums
    /// whatever rows share its GEMM (for few rows sgemm computes (B·Aᵀ)ᵀ and would fold α into the other
    /// operand): per-image adapters in a batch then equal each image alone bit for bit.
    public func added(to y: Variable, input x: Variable) throws -> Variable {
        let active = pairs.filter(\.isActive), activeDeltas = deltaPairs.filter(\.isActive)
        if active.isEmpty && activeDeltas.isEmpty { return y }   // nothing to add in this call (e.g. every row at weight 0)
        if active.contains(where: { $0.magnitude != nil }) { return try addedWithDoRA(to: y, input: x) }
        if active.contains(where: { $0.singularValues != nil }) { return try add(y, delta(x)) }
        let training = dropout > 0 && (host?.isTraining ?? false)
        guard !training, !GradMode.shouldRecord([x, y] + active.flatMap { [$0.down, $0.up] } + activeDeltas.map(\.delta)),
              let width = y.shape.last,
              y.value.count > 0 else {
            return try add(y, delta(x))
        }
        let batch = x.shape[0], perItem = y.value.count / width / max(batch, 1)   // output rows of one batch item
        var out = y.value
        y.value = Tensor(zeros: [0])            // the layer hands `y` over: `out` becomes the storage's only owner
        for pair in active {
            let (items, weights) = try pair.rows(batch: batch)
            var h = try applyDown(items.count == batch ? x : selectRows(x, items), pair).value   // [n, …, r]
            let r = pair.rank
            h.withUnsafeMutableBufferPointer { hp in
                for (j, item) in items.enumerated() {
                    let s = weights[item] * pair.scaling
                    for q in (j * perItem * r)..<((j + 1) * perItem * r) { hp[q] *= s }
                }
            }
            out.withUnsafeMutableBufferPointer { o in
                h.withUnsafeBufferPointer { hp in
                    pair.up.value.withUnsafeBufferPointer { up in
                        // Consecutive items share a GEMM.
                        var j = 0
                        while j < items.count {
                            var k = j + 1
                            while k < items.count, items[k] == items[k - 1] + 1 { k += 1 }
                            sgemm(transA: false, transB: upIsTransposed, m: (k - j) * perItem, n: width, k: r,
                                  alpha: 1, a: hp.baseAddress! + j * perItem * r, lda: r,
                                  b: up.baseAddress!, ldb: upIsTransposed ? r : width,
                                  beta: 1, c: o.baseAddress! + items[j] * perItem * width, ldc: width)
                            j = k
                        }
                    }
                }
            }
        }
        for pair in activeDeltas {
            // Each row gets w·(ΔW·x) for its own row of the product (the GEMM at α = 1, as for LoRA above).
            let (items, weights) = try pair.rows(batch: batch)
            let d = try applyFull(items.count == batch ? x : selectRows(x, items), pair.delta).value   // [n, …, out]
            let span = perItem * width
            out.withUnsafeMutableBufferPointer { o in
                d.withUnsafeBufferPointer { dp in
                    for (j, item) in items.enumerated() {
                        let s = weights[item], src = dp.baseAddress! + j * span, dst = o.baseAddress! + item * span
                        for q in 0..<span { dst[q] += s * src[q] }
                    }
                }
            }
        }
        return Variable(out)
    }

    /// Whether a layer may fold its one trained LoRA pair into its frozen weight (`LayerAdapter.foldablePair`).
    /// On by default; `STYLEDIFFUSION_LORA_FOLD=0` turns it off for a process (to compare), and tests bind it
    /// per task.
    @TaskLocal public static var foldsTrainedPairs: Bool =
        ProcessInfo.processInfo.environment["STYLEDIFFUSION_LORA_FOLD"] != "0"

    /// The pair, when this call records gradients for one plain LoRA pair and the branch adds nothing else:
    /// no other active entry, no per-row weights, no dropout in training, not DoRA or AdaLoRA. Calls that record
    /// no gradients keep `added(to:input:)`, whose up product accumulates into the base output (per-image
    /// weights stay bit for bit the same as each image alone).
    public func foldablePair() -> LowRankFold? {
        guard LoRABranch.foldsTrainedPairs, !deltaPairs.contains(where: \.isActive),
              !(dropout > 0 && (host?.isTraining ?? false)) else { return nil }
        let active = pairs.filter(\.isActive)
        guard active.count == 1, let pair = active.first, pair.magnitude == nil, pair.singularValues == nil,
              pair.rowWeights == nil, GradMode.shouldRecord([pair.down, pair.up]) else { return nil }
        return LowRankFold(down: pair.down, up: pair.up, scale: pair.weight * pair.scaling)
    }

    /// y plus every active entry, DoRA pairs computed from the base output (peft's forward, with gradients).
    private func addedWithDoRA(to y: Variable, input x: Variable) throws -> Variable {
        let dora = pairs.filter { $0.isActive && $0.magnitude != nil }
        var out = y
        if pairs.contains(where: { $0.isActive && $0.magnitude == nil }) || deltaPairs.contains(where: \.isActive) {
            out = try add(out, delta(x))
        }
        guard let base = baseWeight else { throw AdaptersError.invalidRequest("the layer of this branch no longer exists") }
        let biasFree = try hostBias.map { try sub(y, $0) } ?? y                      // W·x [..., out]
        let input = try dropped(x)
        for pair in dora {
            guard pair.rowWeights == nil else {
                throw AdaptersError.invalidRequest("adapter '\(pair.name)' is a DoRA adapter in training; per-image weights need it saved and loaded")
            }
            let m = pair.magnitude!
            // ‖W + s·B·A‖ per output channel, without gradient (peft detaches it).
            let adapted = try Elementwise.add(base, weightDelta(pair, weight: 1)).scalars
            let rows = base.shape[0], inner = base.count / max(rows, 1)
            let inverse = try Tensor(shape: [rows], scalars: (0..<rows).map { o in
                var sum = 0.0
                for j in 0..<inner { let v = Double(adapted[o * inner + j]); sum += v * v }
                return Float(1 / sum.squareRoot())
            })
            let factor = try mul(m, Variable(inverse))                                   // m / ‖W + s·B·A‖ [out]
            let lora = try applyUp(scale(applyDown(input, pair), by: pair.scaling), pair) // s·B·A·x
            let rescaled = try sub(mul(add(biasFree, lora), factor), biasFree)            // f ⊙ (W·x + s·B·A·x) − W·x
            out = try add(out, pair.weight == 1 ? rescaled : scale(rescaled, by: pair.weight))
        }
        return out
    }

    /// down(x), times AdaLoRA's singular values when the pair has them.
    func projectDown(_ x: Variable, _ pair: LoRAPair) throws -> Variable {
        let h = try applyDown(x, pair)
        guard let e = pair.singularValues else { return h }
        return try mul(h, e)                                                            // [..., r] ⊙ E [r]
    }

    /// The host's bias, if any.
    var hostBias: Variable? { nil }

    /// Whether `up` is stored [out, r] (Linear) rather than [r, out] (a 1×1 convolution's HWIO).
    var upIsTransposed: Bool { true }

    func dropped(_ x: Variable) throws -> Variable {
        guard dropout > 0, let host, host.isTraining else { return x }
        let layer = Dropout(p: dropout)          // in training mode as made
        return try layer(x, random: &random)
    }

    public var adapterParameters: [(String, Variable)] {
        pairs.flatMap { p in
            [("lora_A.\(p.name).weight", p.down), ("lora_B.\(p.name).weight", p.up)]
                + (p.magnitude.map { [("lora_magnitude_vector.\(p.name).weight", $0)] } ?? [])
                + (p.singularValues.map { [("lora_E.\(p.name)", $0)] } ?? [])
        }
    }

    // MARK: Pairs

    /// The pair of adapter `name`, if this layer has one.
    public func pair(named name: String) -> LoRAPair? { pairs.first { $0.name == name } }

    /// Adds a pair from checkpoint-layout tensors (shapes checked by `misfit` before).
    func addPair(name: String, down: Tensor, up: Tensor, alpha: Float, weight: Float) {
        let pair = makePair(name: name, down: down, up: up, alpha: alpha)
        pair.weight = weight
        pairs.append(pair)
        syncAttachment()
    }

    /// Adds a freshly initialised, trainable pair of rank `rank` (DoRA: with m = ‖W‖ per output channel, so the
    /// output is unchanged as for LoRA).
    func addTrainablePair(name: String, rank: Int, alpha: Float, initialization: LoRAInit, dora: Bool = false,
                          random: inout PhiloxRandom) {
        let base = baseShape
        let fanIn = base.dropFirst().reduce(1, *)
        let downShape = [rank] + base.dropFirst()
        let down = initialization == .kaimingUniform
            ? random.uniform(shape: downShape, low: -1 / Float(fanIn).squareRoot(), high: 1 / Float(fanIn).squareRoot())
            : random.normal(shape: downShape, std: 1 / Float(rank))
        let up = Tensor(zeros: base.count == 4 ? [base[0], rank, 1, 1] : [base[0], rank])
        let pair = makePair(name: name, down: down, up: up, alpha: alpha)
        pair.down.requiresGrad = true
        pair.up.requiresGrad = true
        if dora, let w = baseWeight {
            let rows = w.shape[0], inner = w.count / max(rows, 1), v = w.scalars
            let norms = (0..<rows).map { o in Float((0..<inner).reduce(0.0) { $0 + Double(v[o * inner + $1]) * Double(v[o * inner + $1]) }.squareRoot()) }
            pair.magnitude = Variable(Tensor(shape: [rows]) { $0.baseAddress!.update(from: norms, count: rows) }, requiresGrad: true)
        }
        pairs.append(pair)
        syncAttachment()
    }

    /// Adds a trainable AdaLoRA triplet of rank `rank` (peft's init: A, B ~ N(0, 0.02²), E = 0).
    func addTrainableSVDPair(name: String, rank: Int, alpha: Float, random: inout PhiloxRandom) {
        let base = baseShape
        let pair = makePair(name: name, down: random.normal(shape: [rank, base[1]], std: 0.02),
                            up: random.normal(shape: [base[0], rank], std: 0.02), alpha: alpha)
        pair.down.requiresGrad = true
        pair.up.requiresGrad = true
        pair.singularValues = Variable(Tensor(zeros: [rank]), requiresGrad: true)
        pairs.append(pair)
        syncAttachment()
    }

    /// Adds an adapter of another kind from its checkpoint-layout factors (fit checked before).
    func addDeltaPair(name: String, factors: any AdapterFactors, weight: Float) throws {
        let pair = WeightDeltaPair(name: name, factors: factors, delta: Variable(layerLayout(try otherDelta(factors))))
        pair.weight = weight
        deltaPairs.append(pair)
        syncAttachment()
    }

    /// The entry of adapter `name` on this layer, of any kind.
    public func entry(named name: String) -> LayerAdapterEntry? { entries.first { $0.name == name } }

    func removePair(named name: String) {
        pairs.removeAll { $0.name == name }
        deltaPairs.removeAll { $0.name == name }
        syncAttachment()
    }

    /// Attaches the branch to its layer while some pair is enabled and not fused (a call may give it weight),
    /// and detaches it otherwise, so a layer without adapters pays nothing.
    func syncAttachment() {
        let live = entries.contains { $0.isLive }
        if live != isAttached { setAttached(live) }
    }

    /// w · ΔW of an entry of any kind in checkpoint layout ([out, in] or [out, in, k, k]).
    public func weightDelta(of entry: LayerAdapterEntry, weight: Float) throws -> Tensor {
        if let pair = entry as? LoRAPair, let m = pair.magnitude {
            let (down, up) = checkpointTensors(pair)
            let dora = DoRAFactors(lora: LoRAFactors(down: down, up: up, alpha: pair.alpha), magnitude: m.value)
            return Elementwise.scale(try otherDelta(dora), by: weight)
        }
        if let pair = entry as? LoRAPair { return try weightDelta(pair, weight: weight) }
        guard let other = entry as? WeightDeltaPair else { throw AdaptersError.invalidRequest("unknown adapter entry") }
        return Elementwise.scale(try otherDelta(other.factors), by: weight)
    }

    /// w · (α/r) · up·down in checkpoint layout ([out, in] or [out, in, k, k]); AdaLoRA: up·(E ⊙ down).
    public func weightDelta(_ pair: LoRAPair, weight: Float) throws -> Tensor {
        var (down, up) = checkpointTensors(pair)
        if let e = pair.singularValues { down = try Elementwise.mul(down.rowMatrix, e.value.reshapedUnchecked([e.shape[0], 1])).reshapedUnchecked(down.shape) }
        let r = pair.rank, outFeatures = up.shape[0], inner = down.count / r
        let product = try TensorCore.matmul(up.reshapedUnchecked([outFeatures, r]), down.reshapedUnchecked([r, inner]))
        return Elementwise.scale(product, by: weight * pair.scaling).reshapedUnchecked(baseShape)
    }
}

/// LoRA on a Linear layer: down [r, in], up [out, r].
public final class LoRALinear: LoRABranch {
    public private(set) weak var layer: Linear?

    public init(layer: Linear, seed: UInt64 = 0) {
        self.layer = layer
        super.init(seed: seed)
    }

    override var host: Module? { layer }
    public override var baseShape: [Int] { layer.map { [$0.outFeatures, $0.inFeatures] } ?? [] }

    override func applyDown(_ x: Variable, _ pair: LoRAPair) throws -> Variable {
        try linear(x, weight: pair.down, bias: nil)                 // [..., in] → [..., r]
    }

    override func applyUp(_ h: Variable, _ pair: LoRAPair) throws -> Variable {
        try linear(h, weight: pair.up, bias: nil)                   // [..., r] → [..., out]
    }

    override func applyFull(_ x: Variable, _ delta: Variable) throws -> Variable {
        try linear(x, weight: delta, bias: nil)                     // [..., in] → [..., out]
    }

    override var baseWeight: Tensor? { layer.map { $0.unbakedWeight ?? $0.float32Weight } }
    override var hostBias: Variable? { layer?.bias }

    override var isAttached: Bool { layer?.adapters.contains { $0 === self } ?? false }

    override func setAttached(_ attached: Bool) {
        guard let layer else { return }
        layer.adapters.removeAll { $0 === self }
        if attached { layer.adapters.append(self) }
    }
}

/// LoRA-C / LoCon on a Conv2d layer: a k×k `down` convolution in→r (the base's stride and padding) and a
/// 1×1 `up` convolution r→out. Checkpoint shapes: down [r, in, k, k], up [out, r, 1, 1].
public final class LoRAConv: LoRABranch {
    public private(set) weak var layer: Conv2d?

    public init(layer: Conv2d, seed: UInt64 = 0) {
        self.layer = layer
        super.init(seed: seed)
    }

    override var host: Module? { layer }
    public override var baseShape: [Int] {
        layer.map { [$0.outChannels, $0.inChannels, $0.kernelSize, $0.kernelSize] } ?? []
    }

    override func applyDown(_ x: Variable, _ pair: LoRAPair) throws -> Variable {
        guard let layer else { throw AdaptersError.invalidRequest("the convolution of this branch no longer exists") }
        return try conv2d(x, weight: pair.down, bias: nil, stride: layer.stride, padding: layer.padding)   // [N, Ho, Wo, r]
    }

    override func applyUp(_ h: Variable, _ pair: LoRAPair) throws -> Variable {
        try conv2d(h, weight: pair.up, bias: nil)                   // [N, Ho, Wo, r] → [N, Ho, Wo, out]
    }

    override var upIsTransposed: Bool { false }

    override func applyFull(_ x: Variable, _ delta: Variable) throws -> Variable {
        guard let layer else { throw AdaptersError.invalidRequest("the convolution of this branch no longer exists") }
        return try conv2d(x, weight: delta, bias: nil, stride: layer.stride, padding: layer.padding)   // [N, Ho, Wo, out]
    }

    override func layerLayout(_ checkpointDelta: Tensor) -> Tensor { Conv2d.hwio(fromOIHW: checkpointDelta) }

    override var baseWeight: Tensor? { layer.map { Conv2d.oihw(fromHWIO: $0.unbakedWeight ?? $0.float32Weight) } }
    override var hostBias: Variable? { layer?.bias }

    override func checkpointTensors(_ pair: LoRAPair) -> (down: Tensor, up: Tensor) {
        (Conv2d.oihw(fromHWIO: pair.down.value), Conv2d.oihw(fromHWIO: pair.up.value))
    }

    override func makePair(name: String, down: Tensor, up: Tensor, alpha: Float) -> LoRAPair {
        let k = baseShape.count == 4 ? baseShape[2] : 1
        let d = down.rank == 2 ? down.reshapedUnchecked(down.shape + [k, k]) : down
        return LoRAPair(name: name, down: Variable(Conv2d.hwio(fromOIHW: d)),
                        up: Variable(Conv2d.hwio(fromOIHW: up.rank == 2 ? up.reshapedUnchecked(up.shape + [1, 1]) : up)),
                        alpha: alpha)
    }

    override var isAttached: Bool { layer?.adapters.contains { $0 === self } ?? false }

    override func setAttached(_ attached: Bool) {
        guard let layer else { return }
        layer.adapters.removeAll { $0 === self }
        if attached { layer.adapters.append(self) }
    }
}

/// Why checkpoint-layout LoRA tensors (down [r, in(, k, k)], up [out, r(, 1, 1)]) do not fit a base weight
/// of checkpoint shape `base` ([out, in] or [out, in, k, k]), or nil when they do. A 1×1 convolution also
/// takes a Linear-shaped pair.
public func loraMisfit(base: [Int], down: [Int], up: [Int]) -> String? {
    guard down.count == base.count || (down.count == 2 && base.count == 4), up.count == down.count,
          down.count >= 2 else { return "rank-\(down.count)/\(up.count) tensors for a rank-\(base.count) weight" }
    let r = down[0]
    guard r > 0, up[1] == r else { return "the down rank \(down[0]) differs from the up rank \(up[1])" }
    guard up[0] == base[0], down[1] == base[1] else { return "shapes do not fit" }
    if down.count == 4 {
        guard Array(down[2...]) == Array(base[2...]), up[2] == 1, up[3] == 1 else { return "kernel sizes do not fit" }
    } else if base.count == 4, base[2] != 1 || base[3] != 1 {
        return "a linear pair for a \(base[2])×\(base[3]) convolution"
    }
    return nil
}
