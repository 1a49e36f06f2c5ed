// DoRA (Liu et al., 2024; peft `tuners/lora/dora.py`, `LoraConfig(use_dora=True)`): a LoRA pair plus a
// magnitude m per output channel, which rescales the adapted weight to that norm:
//
//     W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖,   s = α/r,   ‖·‖ the L2 norm of each output channel's row
//                                                      (over in, and k×k for a convolution)
//
// so the layer adds ΔW = W' − W, which depends on the base weight W. peft stores m as
// `lora_magnitude_vector` ([out], [1, out, 1, 1] on convolutions); LyCORIS / kohya files as `dora_scale`
// ([out, 1(, 1, 1)], the output axis). A file's magnitude on the input axis ([1, in, …], LyCORIS
// `wd_on_out=False`) is refused by name. The weight w of `<lora:name:w>` scales ΔW (A1111 and ComfyUI:
// W + w·(W' − W)); peft's `set_adapters` weight enters s inside the norm instead, so the two agree at w = 1.
import TensorCore

public struct DoRAFactors: AdapterFactors {
    public static let kind = AdapterKind.dora
    public static let suffixes = ["lora_down.weight", "lora_up.weight", "dora_scale"]
    public var lora: LoRAFactors
    /// m, one value per output channel (any shape of that many scalars).
    public var magnitude: Tensor

    public init(lora: LoRAFactors, magnitude: Tensor) {
        self.lora = lora
        self.magnitude = magnitude
    }

    public init(tensors: [String: Tensor], alpha: Float?) throws {
        guard let m = tensors["dora_scale"] else { throw AdapterFactorsError("a DoRA module needs dora_scale") }
        self.init(lora: try LoRAFactors(tensors: tensors, alpha: alpha), magnitude: m)
    }

    public var alpha: Float? { lora.alpha }
    public var rank: Int { lora.rank }
    public var parameterCount: Int { lora.parameterCount + magnitude.count }
    public var needsBaseWeight: Bool { true }

    public func misfit(base: [Int]) -> String? {
        if let reason = lora.misfit(base: base) { return reason }
        guard magnitude.count == base[0] else {
            let inputAxis = base.count > 1 && magnitude.count == base[1] && magnitude.shape.first == 1
            return inputAxis ? "the DoRA magnitude \(magnitude.shape) is on the input axis (LyCORIS wd_on_out=False), which is not supported"
                : "the DoRA magnitude has \(magnitude.count) values for \(base[0]) output channels"
        }
        return nil
    }

    public func weightDelta(base: [Int]) throws -> Tensor {
        throw AdapterFactorsError("a DoRA weight delta depends on the base weight")
    }

    /// W' − W for the base weight W (checkpoint layout), in Double for the norms.
    public func weightDelta(baseWeight: Tensor) throws -> Tensor {
        let base = baseWeight.shape
        if let reason = misfit(base: base) { throw AdapterFactorsError(reason) }
        let adapted = try Elementwise.add(baseWeight, lora.weightDelta(base: base))        // W + s·B·A
        let rows = base[0], inner = adapted.count / max(rows, 1)
        let a = adapted.scalars, w = baseWeight.scalars, m = magnitude.scalars
        return Tensor(shape: base) { out in
            for o in 0..<rows {
                var sum = 0.0
                for j in 0..<inner { let v = Double(a[o * inner + j]); sum += v * v }
                let factor = Float(Double(m[o]) / sum.squareRoot())
                for j in 0..<inner { out[o * inner + j] = factor * a[o * inner + j] - w[o * inner + j] }
            }
        }
    }

    public var fileTensors: [(suffix: String, tensor: Tensor)] {
        lora.fileTensors + [("dora_scale", magnitude.reshapedUnchecked([magnitude.count] + Array(repeating: 1, count: max(lora.down.rank - 1, 1))))]
    }
}
