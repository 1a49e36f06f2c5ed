// BF16 compute of frozen Linear and Conv2d weights (`generate --precision bf16`): a layer asked to compute in
// BF16 packs its F32 weight once (TensorCore's BFloat16Weight) and runs its forward product on BF16-rounded
// operands with F32 accumulation; the F32 weight stays the layer's truth (state dicts, adapters, fusing and the
// input gradient all use it). The packed copy is rebuilt whenever `weight.value` is replaced (a load, a fused
// adapter), and not used while the weight itself is being trained, on CPUs without AVX512-BF16, or under a lower
// kernel level: there the layer computes in F32 as before.
import Autograd
import TensorCore

/// A layer's packed BF16 weight and the F32 storage it was packed from.
final class BFloat16Packing {
    private weak var source: TensorStorage?
    private var packed: BFloat16Weight?

    /// The packing of `weight`, made now if the weight changed since the last call (nil: cannot be packed).
    func weight(for weight: Tensor, pack: (Tensor) -> BFloat16Weight?) -> BFloat16Weight? {
        if source !== weight.storage || packed == nil {
            packed = pack(weight)
            source = weight.storage
        }
        return packed
    }

    var byteCount: Int { packed?.byteCount ?? 0 }
}

/// Whether a layer with BF16 compute on runs it for this call: the CPU can, and the weight is not a gradient target.
func bfloat16Applies(_ packing: BFloat16Packing?, weight: Variable) -> Bool {
    packing != nil && BFloat16Compute.isAvailable && !(weight.requiresGrad && GradMode.isEnabled)
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
                if packNow { _ = l.bfloat16?.weight(for: l.weight.value, pack: BFloat16Weight.linear) }
                changed += 1
            } else if let c = m as? Conv2d, c.quantizedWeight == nil, (c.bfloat16 != nil) != on {
                c.bfloat16 = on ? BFloat16Packing() : nil
                if packNow { _ = c.bfloat16?.weight(for: c.weight.value, pack: BFloat16Weight.convolution) }
                changed += 1
            }
        }
        return changed
    }

    /// Bytes of the BF16 weight copies packed so far in the tree.
    public var bfloat16PackedBytes: Int {
        namedModules().reduce(0) { sum, entry in
            sum + ((entry.1 as? Linear)?.bfloat16?.byteCount ?? (entry.1 as? Conv2d)?.bfloat16?.byteCount ?? 0)
        }
    }
}
