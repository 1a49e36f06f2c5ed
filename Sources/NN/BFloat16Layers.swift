// BF16 compute of frozen Linear and Conv2d weights (`--precision bf16`): a layer asked to compute in BF16 packs its
// F32 weight (TensorCore's BFloat16Weight) and runs its forward product on BF16-rounded operands with F32
// accumulation, and so does the input gradient when training adapters on top (a second packing, made on the first
// backward pass; stride-2 convolutions keep the F32 input gradient).
//
// Two ways to hold the weight: beside the F32 weight (`computeInBFloat16(true)`: the F32 weight stays the layer's
// truth; the packings are rebuilt whenever `weight.value` is replaced), or instead of it (`holdingWeights: true`, as
// `torch_dtype=torch.bfloat16` loads a model: half the memory; `weight.value` is then empty and the F32 weight is the
// BF16 one, unpacked where something needs it: an adapter merge, DoRA's norm, a fallback to F32). BF16 is not used
// while the weight itself is being trained, on CPUs without AVX512-BF16, or under a lower kernel level: there the
// layer computes in F32 (from the unpacked weight when it holds BF16 only). Attention modules of the tree compute
// their scores and probabilities in BF16 too (`bfloat16Attention`) wherever no gradient flows through them.
import Autograd
import TensorCore

/// A layer's packed BF16 weights (for the forward product and, once a backward pass needs it, for the input
/// gradient), each with the F32 storage it was packed from.
final class BFloat16Packing {
    private final class Slot {
        weak var source: TensorStorage?
        var packed: BFloat16Weight?

        func weight(for weight: Tensor, pack: (Tensor) -> BFloat16Weight?) -> BFloat16Weight? {
            if source !== weight.storage {
                packed = pack(weight)
                source = weight.storage
            }
            return packed
        }
    }

    private let forwardSlot = Slot(), inputGradientSlot = Slot()
    /// The packed forward weight when the layer released its F32 weight (then it is the weight), and the input-gradient
    /// packing made from it.
    private(set) var held: BFloat16Weight?
    private var heldInputGradient: BFloat16Weight?

    /// Whether `weight` is the empty stand-in of a released F32 weight.
    func isHeld(_ weight: Tensor) -> Bool { held != nil && weight.count == 0 }

    /// The shape of the weight held in BF16 when `weight` is its stand-in, else nil.
    func heldShape(_ weight: Tensor) -> [Int]? { isHeld(weight) ? held?.sourceShape : nil }

    /// The forward packing of `weight`, made now if the weight changed since the last call (nil: cannot be packed).
    func forward(_ weight: Tensor, pack: (Tensor) -> BFloat16Weight?) -> BFloat16Weight? {
        isHeld(weight) ? held : forwardSlot.weight(for: weight, pack: pack)
    }

    /// The input-gradient packing of `weight`, likewise (made once from the unpacked weight when it is held in BF16).
    func inputGradient(_ weight: Tensor, pack: (Tensor) -> BFloat16Weight?) -> BFloat16Weight? {
        guard isHeld(weight) else { return inputGradientSlot.weight(for: weight, pack: pack) }
        if heldInputGradient == nil { heldInputGradient = pack(float32(weight)) }
        return heldInputGradient
    }

    /// `weight`, or the held BF16 weight as F32 when `weight` is its empty stand-in.
    func float32(_ weight: Tensor) -> Tensor {
        guard isHeld(weight), let held, let w = held.sourceWeight() else { return weight }
        return w
    }

    /// Packs `weight` now and keeps the packing as the weight; false when it cannot be packed.
    func hold(_ weight: Tensor, pack: (Tensor) -> BFloat16Weight?) -> Bool {
        guard let packed = forwardSlot.weight(for: weight, pack: pack) else { return false }
        held = packed
        return true
    }

    var byteCount: Int {
        (held === forwardSlot.packed ? 0 : held?.byteCount ?? 0) + (forwardSlot.packed?.byteCount ?? 0)
            + (inputGradientSlot.packed?.byteCount ?? 0) + (heldInputGradient?.byteCount ?? 0)
    }
}

/// The weight and packings a layer with BF16 compute on uses for this call: no packing unless the CPU can and the
/// weight is not a gradient target; the input-gradient one only when a backward pass will want the input's
/// gradient (and never for a strided convolution: `inputGradient` nil). The weight variable is the layer's own, or
/// the unpacked BF16 weight where the F32 path must run on a layer holding BF16 only.
func bfloat16Operands(_ packing: BFloat16Packing?, weight: Variable, input: Variable,
                      forward: (Tensor) -> BFloat16Weight?, inputGradient: ((Tensor) -> BFloat16Weight?)?)
    -> (weight: Variable, forward: BFloat16Weight?, inputGradient: BFloat16Weight?) {
    guard let packing else { return (weight, nil, nil) }
    let held = packing.isHeld(weight.value)
    let needsGradient = input.requiresGrad && GradMode.isEnabled
    guard BFloat16Compute.isAvailable, !(weight.requiresGrad && GradMode.isEnabled) else {
        return (held ? Variable(packing.float32(weight.value)) : weight, nil, nil)
    }
    let f = packing.forward(weight.value, pack: forward)
    guard needsGradient else { return (weight, f, nil) }
    // No input-gradient packing (a strided convolution, an odd output width such as an RGB output convolution):
    // the F32 input gradient, which needs the weight.
    guard let g = inputGradient.flatMap({ packing.inputGradient(weight.value, pack: $0) }) else {
        return (held ? Variable(packing.float32(weight.value)) : weight, f, nil)
    }
    return (weight, f, g)
}

extension Linear {
    /// The F32 weight `[out, in]`: the layer's own, or its BF16 weight unpacked when it holds BF16 only.
    public var float32Weight: Tensor { bfloat16?.float32(weight.value) ?? weight.value }
}

extension Conv2d {
    /// The F32 weight (HWIO): the layer's own, or its BF16 weight unpacked when it holds BF16 only.
    public var float32Weight: Tensor { bfloat16?.float32(weight.value) ?? weight.value }
}

extension Module {
    /// Turns BF16 compute on (or off) for every Linear and Conv2d of the tree whose weight is F32 (4-bit layers keep
    /// their own kernels), and for its attention modules' scores and probabilities where no gradient flows through
    /// them (inference). Returns how many Linear and Conv2d layers changed. Where the CPU runs BF16 the weights are packed now (else
    /// on a layer's first forward, should the kernel level change); with `holdingWeights` each packed layer then
    /// releases its F32 weight and holds the BF16 one only (half the memory; its weight becomes the BF16-rounded
    /// one, and it leaves the state dict). Turning BF16 off gives such a layer its weight back as F32.
    @discardableResult
    public func computeInBFloat16(_ on: Bool, holdingWeights: Bool = false) -> Int {
        var changed = 0
        let packNow = on && BFloat16Compute.isAvailable
        for (_, m) in namedModules() {
            if let l = m as? Linear, l.quantizedWeight == nil {
                changed += l.weight.setBFloat16(on: on, packNow: packNow, hold: holdingWeights, packing: &l.bfloat16,
                                                pack: BFloat16Weight.linear)
            } else if let c = m as? Conv2d, c.quantizedWeight == nil {
                changed += c.weight.setBFloat16(on: on, packNow: packNow, hold: holdingWeights, packing: &c.bfloat16,
                                                pack: BFloat16Weight.convolution)
            } else if let a = m as? Attention {
                a.bfloat16Scores = on
            }
        }
        if holdingWeights, changed > 0 { TensorMemory.shared.trim() }     // the released F32 weights leave the cache
        return changed
    }

    /// Whether any Linear or Conv2d of the tree has BF16 compute on.
    public var computesInBFloat16: Bool {
        namedModules().contains { ($0.1 as? Linear)?.bfloat16 != nil || ($0.1 as? Conv2d)?.bfloat16 != nil }
    }

    /// Bytes of the BF16 weight copies packed so far in the tree.
    public var bfloat16PackedBytes: Int {
        namedModules().reduce(0) { sum, entry in
            sum + ((entry.1 as? Linear)?.bfloat16?.byteCount ?? (entry.1 as? Conv2d)?.bfloat16?.byteCount ?? 0)
        }
    }
}

extension Variable {
    /// One layer's switch (`computeInBFloat16`); 1 when it changed, else 0.
    fileprivate func setBFloat16(on: Bool, packNow: Bool, hold: Bool, packing: inout BFloat16Packing?,
                                 pack: (Tensor) -> BFloat16Weight?) -> Int {
        if !on {
            guard let current = packing else { return 0 }
            if current.isHeld(value) { value = current.float32(value) }
            packing = nil
            return 1
        }
        var changed = 0
        if packing == nil {
            packing = BFloat16Packing()
            changed = 1
        }
        guard packNow, let current = packing else { return changed }
        if hold, !current.isHeld(value), !requiresGrad, current.hold(value, pack: pack) {
            value = Tensor(zeros: [0])
            return 1
        }
        _ = current.forward(value, pack: pack)
        return changed
    }
}
