// Conv2d over NHWC activations (torch.nn.Conv2d semantics; square kernel, symmetric padding).
//
// The weight lives in the convolution kernel's layout, HWIO [kh, kw, Cin, Cout], and is converted from
// and to the checkpoint's OIHW [Cout, Cin, kh, kw] at the state-dict boundary, so weight files load
// unchanged. Attached adapters add their branch: y = conv(x) + Σ adapter.delta(x).
import Autograd
import TensorCore

public final class Conv2d: Module {
    public let weight: Variable          // [kh, kw, Cin, Cout] (HWIO); checkpoint: [Cout, Cin, kh, kw]
    public let bias: Variable?           // [Cout]
    public let stride: Int
    public let padding: Int
    /// Additive branches applied after the base convolution; empty costs nothing.
    public var adapters: [any LayerAdapter] = []
    /// The weight (HWIO) as it was before `bakeWeightDelta` (nil when nothing is baked).
    public private(set) var unbakedWeight: Tensor?
    /// The frozen weight in 4-bit storage, HWIO order (Linear+Quantization.swift); `weight` is then empty.
    public internal(set) var quantizedWeight: FourBitTensor?
    /// BF16 compute of the frozen weight (BFloat16Layers.swift); nil: F32.
    var bfloat16: BFloat16Packing?

    public var inChannels: Int { weightShape[2] }
    public var outChannels: Int { weightShape[3] }
    public var kernelSize: Int { weightShape[0] }
    /// HWIO, whether the weight is held in F32, 4-bit or BF16.
    public var weightShape: [Int] { quantizedWeight?.shape ?? bfloat16?.heldShape(weight.value) ?? weight.shape }

    /// Zero-initialised parameters (set them by `load(stateDict:)` or an initialiser).
    public init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) {
        weight = Variable(Tensor(zeros: [kernelSize, kernelSize, inChannels, outChannels]), requiresGrad: true)
        self.bias = bias ? Variable(Tensor(zeros: [outChannels]), requiresGrad: true) : nil
        self.stride = stride
        self.padding = padding
        super.init()
    }

    /// x [N, H, W, Cin] → [N, Ho, Wo, Cout]. In training, a frozen F32 weight whose one adapter offers a foldable pair
    /// takes it into the convolution for the call (`foldedLoRAConv2d`: the same function, fewer products).
    public func callAsFunction(_ x: Variable) throws -> Variable {
        if adapters.count == 1, quantizedWeight == nil, bfloat16 == nil, !weight.requiresGrad,
           let fold = adapters[0].foldablePair() {
            return try foldedLoRAConv2d(x, weight: weight.value, bias: bias, down: fold.down, up: fold.up, scale: fold.scale,
                                        stride: stride, padding: padding)
        }
        var y = try quantizedWeight.map { try quantizedConv2d(x, weight: $0, bias: bias, stride: stride, padding: padding) }
            ?? baseConvolution(x)
        for adapter in adapters { y = try adapter.added(to: y, input: x) }
        return y
    }

    /// The convolution over the F32 weight, in BF16 where `computeInBFloat16` turned it on.
    private func baseConvolution(_ x: Variable) throws -> Variable {
        let bf16 = bfloat16Operands(bfloat16, weight: weight, input: x, forward: BFloat16Weight.convolution,
                                    inputGradient: stride == 1 ? BFloat16Weight.convolutionInputGradient : nil)
        return try conv2d(x, weight: bf16.weight, bias: bias, stride: stride, padding: padding, bfloat16: bf16.forward,
                          bfloat16InputGradient: bf16.inputGradient)
    }

    /// PyTorch's default: weight and bias uniform in ±1/√(Cin·kh·kw).
    public override func resetParameters(random: inout PhiloxRandom) {
        let bound = 1 / Float(max(inChannels * kernelSize * kernelSize, 1)).squareRoot()
        weight.value = random.uniform(shape: weight.shape, low: -bound, high: bound)
        if let bias { bias.value = random.uniform(shape: bias.shape, low: -bound, high: bound) }
    }

    public override func namedAdapterParameters() -> [(String, Variable)] {
        adapters.flatMap(\.adapterParameters)
    }

    /// A quantized layer's (or one holding its weight in BF16 only) state-dict parameters are its bias only.
    public override func namedDirectParameters() -> [(String, Variable)] {
        guard quantizedWeight != nil || bfloat16?.isHeld(weight.value) == true else { return super.namedDirectParameters() }
        return bias.map { [("bias", $0)] } ?? []
    }

    // MARK: Checkpoint layout (OIHW) at the boundary

    public override func checkpointShape(ofParameter name: String, _ parameter: Variable) -> [Int] {
        guard parameter === weight else { return parameter.shape }
        return [outChannels, inChannels, kernelSize, kernelSize]
    }

    public override func checkpointValue(ofParameter name: String, _ parameter: Variable) -> Tensor {
        guard parameter === weight else { return parameter.value }
        return Conv2d.oihw(fromHWIO: parameter.value)
    }

    public override func assignParameter(_ name: String, _ parameter: Variable, fromCheckpoint tensor: Tensor) {
        parameter.value = parameter === weight ? Conv2d.hwio(fromOIHW: tensor) : tensor
    }

    /// [Cout, Cin, kh, kw] → the kernel's layout (shape checked before, so the conversion cannot fail).
    public static func hwio(fromOIHW w: Tensor) -> Tensor {
        guard let t = try? convWeightFromOIHW(w) else { preconditionFailure("conv weight \(w.shape) is not rank 4") }
        return t
    }

    /// The kernel's layout → [Cout, Cin, kh, kw].
    public static func oihw(fromHWIO w: Tensor) -> Tensor {
        guard let t = try? convWeightToOIHW(w) else { preconditionFailure("conv weight \(w.shape) is not rank 4") }
        return t
    }

    // MARK: Baking a delta into the weight

    /// W += scale · ΔW with ΔW in checkpoint layout [Cout, Cin, kh, kw]; the original weight is kept on
    /// the first bake.
    public func bakeWeightDelta(_ delta: Tensor, scale: Float = 1) throws {
        if quantizedWeight != nil { throw QuantizedLayerError.fusingIntoQuantized("a Conv2d layer") }
        let expected = [outChannels, inChannels, kernelSize, kernelSize]
        guard delta.shape == expected else {
            throw AutogradError.invalidInput("bakeWeightDelta: delta \(delta.shape) for conv weight \(expected) (OIHW)")
        }
        let current = float32Weight
        if unbakedWeight == nil { unbakedWeight = current }
        weight.value = try Elementwise.axpy(scale, Conv2d.hwio(fromOIHW: delta), current)
    }

    /// Restores the weight exactly as it was before the first `bakeWeightDelta`.
    public func restoreBakedWeight() {
        if let original = unbakedWeight { weight.value = original }
        unbakedWeight = nil
    }
}
