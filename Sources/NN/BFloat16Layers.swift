// BF16 compute of frozen Linear and Conv2d weights (`generate --precision bf16`): a layer asked to compute in
// BF16 packs its F32 weight once (TensorCore's BFloat16Weight) and runs its forward product on BF16-rounded
// operands with F32 accumulation, and so does the input gradient when training adapters on top (a second packing,
// made on the first backward pass; stride-2 convolutions keep the F32 input gradient). The F32 weight stays the
// layer's truth (state dicts, adapters, fusing). The packed copies are rebuilt whenever `weight.value` is replaced
// (a load, a fused adapter), and not used while the weight itself is being trained, on CPUs without AVX512-BF16,
// or under a lower kernel level: there the layer computes in F32 as before.
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

    /// The forward packing of `weight`, made now if the weight changed since the last call (nil: cannot be packed).
    func forward(_ weight: Tensor, pack: (Tensor) -> BFloat16Weight?) -> BFloat16Weight? {
        forwardSlot.weight(for: weight, pack: pack)
    }

    /// The input-gradient packing of `weight`, likewise.
    func inputGradient(_ weight: Tensor, pack: (Tensor) -> BFloat16Weight?) -> BFloat16Weight? {
        inputGradientSlot.weight(for: weight, pack: pack)
    }

    var byteCount: Int { (forwardSlot.packed?.byteCount ?? 0) + (inputGradientSlot.packed?.byteCount ?? 0) }
}

/// The packings a layer with BF16 compute on uses for this call: none unless the CPU can and the weight is not a
/// gradient target; the input-gradient one only when a backward pass will want the input's gradient.
func bfloat16Packings(_ packing: BFloat16Packing?, weight: Variable, input: Variable,
                      forward: (Tensor) -> BFloat16Weight?, inputGradient: (Tensor) -> BFloat16Weight?)
    -> (forward: BFloat16Weight?, inputGradient: BFloat16Weight?) {
    guard let packing, BFloat16Compute.isAvailable, !(weight.requiresGrad && GradMode.isEnabled) else { return (nil, nil) }
    let f = packing.forward(weight.value, pack: forward)
    let needsGradient = input.requiresGrad && GradMode.isEnabled
    return (f, needsGradient ? packing.inputGradient(weight.value, pack: inputGradient) : nil)
}

extension Module {
    /// Turns BF16 compute on (or off) for every Linear and Conv2d of the tree whose weight is F32 (4-bit layers
    /// keep their own kernels). Returns how many layers changed. Where the CPU runs BF16, the weights are packed
    /// now (else on a layer's first forward, should the kernel level change).
    @discardableResult
    public func computeInBFloat16(_ on: Bool) -> Int {
        var changed = 0
        let packNow = on && BFloat16Compute.isAvailable
        for (_, m) in namedModules() {
            if let l = m as? Linear, l.quantizedWeight == nil, (l.bfloat16 != nil) != on {
                l.bfloat16 = on ? BFloat16Packing() : nil
                if packNow { _ = l.bfloat16?.forward(l.weight.value, pack: BFloat16Weight.linear) }
                changed += 1
            } else if let c = m as? Conv2d, c.quantizedWeight == nil, (c.bfloat16 != nil) != on {
                c.bfloat16 = on ? BFloat16Packing() : nil
                if packNow { _ = c.bfloat16?.forward(c.weight.value, pack: BFloat16Weight.convolution) }
                changed += 1
            }
        }
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
