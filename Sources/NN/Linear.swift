// Linear: y = x·Wᵀ + b over the last dimension (torch.nn.Linear; weight [out, in], bias [out]),
// plus any attached low-rank adapters: y = base(x) + Σ adapter.delta(x).
import Autograd
import TensorCore

/// An additive branch on a Linear or Conv2d layer (LoRA and its kin): the layer's output becomes
/// `base(x) + Σ delta(x)`. Implemented by the Adapters module.
public protocol LayerAdapter: AnyObject {
    /// The branch's contribution for the layer input `x`; the same shape as the layer's base output.
    func delta(_ x: Variable) throws -> Variable
    /// The branch's parameters, named relative to the layer (e.g. `"lora_A.default.weight"`).
    var adapterParameters: [(String, Variable)] { get }
    /// `y + delta(x)` for the base output `y`, which the layer hands over: an adapter may accumulate into
    /// `y`'s storage when nothing records gradients.
    func added(to y: Variable, input x: Variable) throws -> Variable
    /// The one trainable low-rank pair this adapter adds in the current call, when that is all it adds, for
    /// the layer to fold into its frozen weight (`foldedLoRALinear`, `foldedLoRAConv2d`); nil otherwise.
    func foldablePair() -> LowRankFold?
}

extension LayerAdapter {
    public func added(to y: Variable, input x: Variable) throws -> Variable { try add(y, delta(x)) }
    public func foldablePair() -> LowRankFold? { nil }
}

/// A low-rank pair and its scale (weight·α/r) as a layer folds it: Linear down [r, in], up [out, r];
/// convolution down [k, k, in, r], up [1, 1, r, out] (HWIO).
public struct LowRankFold {
    public let down: Variable
    public let up: Variable
    public let scale: Float

    public init(down: Variable, up: Variable, scale: Float) {
        self.down = down
        self.up = up
        self.scale = scale
    }
}

public final class Linear: Module {
    public let weight: Variable          // [out, in]
    public let bias: Variable?           // [out]
    /// Additive branches applied after the base map; empty costs nothing.
    public var adapters: [any LayerAdapter] = []
    /// The weight as it was before `bakeWeightDelta` (nil when nothing is baked).
    public private(set) var unbakedWeight: Tensor?
    /// The frozen weight in 4-bit storage (Linear+Quantization.swift); `weight` is then empty.
    public internal(set) var quantizedWeight: FourBitTensor?
    /// BF16 compute of the frozen weight (BFloat16Layers.swift); nil: F32.
    var bfloat16: BFloat16Packing?

    public var inFeatures: Int { weightShape[1] }
    public var outFeatures: Int { weightShape[0] }
    /// `[out, in]`, whether the weight is held in F32, 4-bit or BF16.
    public var weightShape: [Int] { quantizedWeight?.shape ?? bfloat16?.heldShape(weight.value) ?? weight.shape }

    /// Zero-initialised parameters of the given size (set them by `load(stateDict:)` or an initialiser).
    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true) {
        weight = Variable(Tensor(zeros: [outFeatures, inFeatures]), requiresGrad: true)
        self.bias = bias ? Variable(Tensor(zeros: [outFeatures]), requiresGrad: true) : nil
        super.init()
    }

    /// x [..., in] → [..., out]. In training, a frozen F32 weight whose one adapter offers a foldable pair takes it into
    /// the product for the call (`foldedLoRALinear`: the same function, fewer products).
    public func callAsFunction(_ x: Variable) throws -> Variable {
        if adapters.count == 1, quantizedWeight == nil, bfloat16 == nil, !weight.requiresGrad,
           let fold = adapters[0].foldablePair() {
            return try foldedLoRALinear(x, weight: weight.value, bias: bias, down: fold.down, up: fold.up, scale: fold.scale)
        }
        var y = try quantizedWeight.map { try quantizedLinear(x, weight: $0, bias: bias) }
            ?? baseProduct(x)
        for adapter in adapters { y = try adapter.added(to: y, input: x) }
        return y
    }

    /// x·Wᵀ + b over the F32 weight, in BF16 where `computeInBFloat16` turned it on.
    private func baseProduct(_ x: Variable) throws -> Variable {
        let bf16 = bfloat16Operands(bfloat16, weight: weight, input: x, forward: BFloat16Weight.linear,
                                    inputGradient: BFloat16Weight.linearInputGradient)
        return try linear(x, weight: bf16.weight, bias: bias, bfloat16: bf16.forward,
                          bfloat16InputGradient: bf16.inputGradient)
    }

    /// PyTorch's default: weight and bias uniform in ±1/√in.
    public override func resetParameters(random: inout PhiloxRandom) {
        let bound = 1 / Float(max(inFeatures, 1)).squareRoot()
        weight.value = random.uniform(shape: weight.shape, low: -bound, high: bound)
        if let bias { bias.value = random.uniform(shape: bias.shape, low: -bound, high: bound) }
    }

    public override func namedAdapterParameters() -> [(String, Variable)] {
        adapters.flatMap(\.adapterParameters)
    }

    /// A quantized layer's state-dict parameters are its bias only (the 4-bit weight is saved by its own writer), and
    /// so are a layer's that holds its weight in BF16 only.
    public override func namedDirectParameters() -> [(String, Variable)] {
        guard quantizedWeight != nil || bfloat16?.isHeld(weight.value) == true else { return super.namedDirectParameters() }
        return bias.map { [("bias", $0)] } ?? []
    }

    /// W += scale · ΔW (ΔW [out, in]), remembering the original weight on the first bake.
    public func bakeWeightDelta(_ delta: Tensor, scale: Float = 1) throws {
        if quantizedWeight != nil { throw QuantizedLayerError.fusingIntoQuantized("a Linear layer") }
        let current = float32Weight
        guard delta.shape == current.shape else {
            throw AutogradError.invalidInput("bakeWeightDelta: delta \(delta.shape) for weight \(current.shape)")
        }
        if unbakedWeight == nil { unbakedWeight = current }
        weight.value = try Elementwise.axpy(scale, delta, current)
    }

    /// Restores the weight exactly as it was before the first `bakeWeightDelta`.
    public func restoreBakedWeight() {
        if let original = unbakedWeight { weight.value = original }
        unbakedWeight = nil
    }
}
