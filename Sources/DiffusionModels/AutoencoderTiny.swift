// Port of diffusers 0.42 `models/autoencoders/autoencoder_tiny.py` `AutoencoderTiny` (TAESD, Bohan 2023) —
// `models/autoencoders/vae.py` `EncoderTiny` and `DecoderTiny`, `unets/unet_2d_blocks.py` `AutoencoderTinyBlock`.
// A few plain 3×3 convolutions with ReLU at each resolution and nearest ×2 up-sampling between them: about
// 1.2 M parameters for SD's latents, a small fraction of AutoencoderKL's decoder cost, for previews and drafts.
// Property names are the checkpoint's keys (`decoder.layers.<i>.conv.<j>.weight`, `encoder.layers.…`), NHWC inside.
// The encoder returns the latents themselves (no posterior to sample); `latent_magnitude`/`latent_shift` only
// serve diffusers' uint8 `scale_latents` helpers, which its pipelines do not call.
import Autograd
import Foundation
import NN
import TensorCore

/// `config.json` of a diffusers `AutoencoderTiny` folder (e.g. madebyollin/taesd).
public struct AutoencoderTinyConfig: Equatable, Sendable {
    public var latentChannels: Int
    public var outChannels: Int
    public var decoderBlockOutChannels: [Int]
    /// `AutoencoderTinyBlock`s at each resolution of the decoder.
    public var numDecoderBlocks: [Int]
    public var upsamplingScalingFactor: Int
    public var inChannels: Int
    public var encoderBlockOutChannels: [Int]
    /// Per encoder level: a conv (stride 2 after the first level) then this many `AutoencoderTinyBlock`s.
    public var numEncoderBlocks: [Int]
    /// TAESD's own latent range (`latent_magnitude`, `latent_shift`), used by its scale/unscale helpers.
    public var latentMagnitude: Double
    public var latentShift: Double
    /// The pipeline decodes `latents / scaling_factor` (1 for TAESD: it reads the UNet's latents as they are).
    public var scalingFactor: Float

    public init(latentChannels: Int = 4, outChannels: Int = 3, decoderBlockOutChannels: [Int] = [64, 64, 64, 64],
                numDecoderBlocks: [Int] = [3, 3, 3, 1], upsamplingScalingFactor: Int = 2, latentMagnitude: Double = 3,
                latentShift: Double = 0.5, scalingFactor: Float = 1, inChannels: Int = 3,
                encoderBlockOutChannels: [Int] = [64, 64, 64, 64], numEncoderBlocks: [Int] = [1, 3, 3, 3]) {
        self.inChannels = inChannels
        self.encoderBlockOutChannels = encoderBlockOutChannels
        self.numEncoderBlocks = numEncoderBlocks
        self.latentChannels = latentChannels
        self.outChannels = outChannels
        self.decoderBlockOutChannels = decoderBlockOutChannels
        self.numDecoderBlocks = numDecoderBlocks
        self.upsamplingScalingFactor = upsamplingScalingFactor
        self.latentMagnitude = latentMagnitude
        self.latentShift = latentShift
        self.scalingFactor = scalingFactor
    }

    /// Spatial up-sampling factor of the decoder.
    public var upsamplingFactor: Int {
        Int(pow(Double(upsamplingScalingFactor), Double(max(decoderBlockOutChannels.count - 1, 0))))
    }

    /// Reads a `config.json`.
    public init(contentsOf url: URL) throws {
        self = try loadConfiguration(Self.self, contentsOf: url)
    }

    public init(jsonData: Data, file: String = "config.json") throws {
        self = try decodeConfiguration(Self.self, from: jsonData, file: file)
    }
}

extension AutoencoderTinyConfig: Decodable {
    public init(from decoder: Swift.Decoder) throws {
        let r = try ConfigReader(decoder)
        try r.require("act_fn", in: [.string("relu")])
        try r.require("upsample_fn", in: [.string("nearest")])
        try r.require("upsampling_scaling_factor", in: [.number(2)])
        try r.require("shift_factor", in: [.number(0)])
        self.init(latentChannels: try r.value("latent_channels", 4), outChannels: try r.value("out_channels", 3),
                  decoderBlockOutChannels: try r.value("decoder_block_out_channels", [64, 64, 64, 64]),
                  numDecoderBlocks: try r.value("num_decoder_blocks", [3, 3, 3, 1]),
                  upsamplingScalingFactor: 2,
                  latentMagnitude: try r.value("latent_magnitude", 3.0), latentShift: try r.value("latent_shift", 0.5),
                  scalingFactor: try r.value("scaling_factor", Float(1)), inChannels: try r.value("in_channels", 3),
                  encoderBlockOutChannels: try r.value("encoder_block_out_channels", [64, 64, 64, 64]),
                  numEncoderBlocks: try r.value("num_encoder_blocks", [1, 3, 3, 3]))
        guard !decoderBlockOutChannels.isEmpty, decoderBlockOutChannels.count == numDecoderBlocks.count else {
            throw ConfigurationError.invalid(option: "num_decoder_blocks", reason: "\(numDecoderBlocks.count) entries for "
                + "\(decoderBlockOutChannels.count) decoder_block_out_channels", file: r.file)
        }
        // EncoderTiny's strided convs map block_out_channels[i] to itself: the levels must agree.
        guard !encoderBlockOutChannels.isEmpty, encoderBlockOutChannels.count == numEncoderBlocks.count,
              Set(encoderBlockOutChannels).count == 1 else {
            throw ConfigurationError.invalid(option: "encoder_block_out_channels", reason: "\(encoderBlockOutChannels) for "
                + "num_encoder_blocks \(numEncoderBlocks) (one width per level, all equal)", file: r.file)
        }
    }
}

/// `AutoencoderTinyBlock`: relu(conv.4(relu(conv.2(relu(conv.0(x))))) + x) (in = out channels: skip is the identity).
public final class AutoencoderTinyBlock: Module {
    public let conv: ModuleList<Conv2d>   // keys conv.0, conv.2, conv.4 (1 and 3 are ReLUs)

    public init(channels: Int) {
        conv = ModuleList((0..<3).map { _ in Conv2d(inChannels: channels, outChannels: channels, kernelSize: 3, padding: 1) })
        super.init()
    }

    public override func namedChildren() -> [(String, Module)] { [("conv", SparseModules(zip([0, 2, 4], conv.items)))] }

    public func callAsFunction(_ x: Variable) throws -> Variable {
        let y = try conv[2](relu(try conv[1](relu(try conv[0](x)))))
        return relu(try Autograd.add(y, x))
    }
}

/// A `nn.Sequential` whose parameter-free entries (activations, up-sampling) keep their indices.
final class SparseModules: Module {
    let entries: [(String, Module)]
    init<S: Sequence>(_ entries: S) where S.Element == (Int, Module) {
        self.entries = entries.map { (String($0.0), $0.1) }
        super.init()
    }
    override func namedChildren() -> [(String, Module)] { entries }
    override func namedDirectParameters() -> [(String, Variable)] { [] }
}

/// `DecoderTiny`: tanh(x / 3)·3, conv + ReLU, then per level `num_decoder_blocks[i]` blocks, nearest ×2 (all
/// but the last level) and a conv (no bias, except the final one to `out_channels`); output · 2 − 1.
public final class DecoderTiny: Module {
    enum Layer { case conv(Conv2d), relu, block(AutoencoderTinyBlock), upsample }
    let sequence: [Layer]

    public init(config: AutoencoderTinyConfig) {
        let ch = config.decoderBlockOutChannels
        var layers: [Layer] = [.conv(Conv2d(inChannels: config.latentChannels, outChannels: ch[0], kernelSize: 3, padding: 1)), .relu]
        for (i, count) in config.numDecoderBlocks.enumerated() {
            let last = i == ch.count - 1
            layers += (0..<count).map { _ in .block(AutoencoderTinyBlock(channels: ch[i])) }
            if !last { layers.append(.upsample) }
            layers.append(.conv(Conv2d(inChannels: ch[i], outChannels: last ? config.outChannels : ch[i], kernelSize: 3,
                                       padding: 1, bias: last)))
        }
        sequence = layers
        super.init()
    }

    public override func namedChildren() -> [(String, Module)] {
        let modules: [(Int, Module)] = sequence.enumerated().compactMap { i, layer in
            switch layer {
            case .conv(let c): return (i, c)
            case .block(let b): return (i, b)
            case .relu, .upsample: return nil
            }
        }
        return [("layers", SparseModules(modules))]
    }

    /// Latents [N, h, w, latentChannels] → image [N, h·f, w·f, outChannels] in about [−1, 1].
    public func callAsFunction(_ z: Variable) throws -> Variable {
        // x = torch.tanh(x / 3) * 3
        var x = map(z) { tanh($0 / 3) * 3 }
        for layer in sequence {
            switch layer {
            case .conv(let c): x = try c(x)
            case .relu: x = relu(x)
            case .block(let b): x = try b(x)
            case .upsample: x = try upsampleNearest2x(x)
            }
        }
        // x.mul(2).sub(1)
        return map(x) { $0 * 2 - 1 }
    }
}

/// `EncoderTiny`: image [−1, 1] → (x + 1) / 2, then per level a conv (3×3; stride 2 without bias after the
/// first level) and `num_encoder_blocks[i]` blocks, and a final conv (with bias) to the latent channels.
public final class EncoderTiny: Module {
    enum Layer { case conv(Conv2d), block(AutoencoderTinyBlock) }
    let sequence: [Layer]

    public init(config: AutoencoderTinyConfig) {
        let ch = config.encoderBlockOutChannels
        var layers: [Layer] = []
        for (i, count) in config.numEncoderBlocks.enumerated() {
            layers.append(.conv(i == 0 ? Conv2d(inChannels: config.inChannels, outChannels: ch[0], kernelSize: 3, padding: 1)
                : Conv2d(inChannels: ch[i], outChannels: ch[i], kernelSize: 3, stride: 2, padding: 1, bias: false)))
            layers += (0..<count).map { _ in .block(AutoencoderTinyBlock(channels: ch[i])) }
        }
        layers.append(.conv(Conv2d(inChannels: ch[ch.count - 1], outChannels: config.latentChannels, kernelSize: 3, padding: 1)))
        sequence = layers
        super.init()
    }

    public override func namedChildren() -> [(String, Module)] {
        let modules: [(Int, Module)] = sequence.enumerated().map { i, layer in
            switch layer {
            case .conv(let c): return (i, c)
            case .block(let b): return (i, b)
            }
        }
        return [("layers", SparseModules(modules))]
    }

    /// Image [N, H, W, inChannels] in about [−1, 1] → latents [N, H/f, W/f, latentChannels].
    public func callAsFunction(_ image: Variable) throws -> Variable {
        // self.layers(x.add(1).div(2))
        var x = map(image) { ($0 + 1) / 2 }
        for layer in sequence {
            switch layer {
            case .conv(let c): x = try c(x)
            case .block(let b): x = try b(x)
            }
        }
        return x
    }
}

/// TAESD as diffusers' `AutoencoderTiny`: encoder and decoder.
public final class AutoencoderTiny: Module {
    public let config: AutoencoderTinyConfig
    public let decoder: DecoderTiny
    public let encoder: EncoderTiny

    public init(config: AutoencoderTinyConfig) {
        self.config = config
        decoder = DecoderTiny(config: config)
        encoder = EncoderTiny(config: config)
        super.init()
    }

    public override func namedChildren() -> [(String, Module)] { [("decoder", decoder), ("encoder", encoder)] }

    /// Spatial down-sampling factor of the encoder.
    public var downsamplingFactor: Int { 1 << max(config.encoderBlockOutChannels.count - 1, 0) }

    /// Image [N, H, W, inChannels] in [−1, 1] → the UNet's latents: scaling_factor · encode(image).latents, as
    /// diffusers' img2img pipelines take them from an `AutoencoderTinyOutput` (no sampling, no generator draw).
    public func unetLatents(fromImage image: Tensor) throws -> Tensor {
        let f = downsamplingFactor
        guard image.shape.count == 4, image.shape[3] == config.inChannels, image.shape[1] % f == 0, image.shape[2] % f == 0 else {
            throw AutogradError.invalidInput("AutoencoderTiny: images must be NHWC [N, H, W, \(config.inChannels)] with H and W "
                + "multiples of \(f), got \(image.shape)")
        }
        return Elementwise.scale(try withNoGrad { try encoder(Variable(image)) }.value, by: config.scalingFactor)
    }

    /// The UNet's latents [N, h, w, C] → image [N, h·f, w·f, outChannels]: decode(latents / scaling_factor), as
    /// diffusers' pipelines call it (no gradient is recorded).
    public func image(fromUNetLatents latents: Tensor) throws -> Tensor {
        guard latents.shape.count == 4, latents.shape[3] == config.latentChannels else {
            throw AutogradError.invalidInput("AutoencoderTiny: latents must be NHWC [N, h, w, \(config.latentChannels)], got \(latents.shape)")
        }
        let z = Elementwise.scale(latents, by: 1 / config.scalingFactor)
        return try withNoGrad { try decoder(Variable(z)) }.value
    }

    /// Loads only the decoder's tensors (`decoder.*`) strictly, leaving any `encoder.*` aside (the encoder keeps
    /// its initial weights); `load(stateDict:)` loads both strictly.
    public func loadDecoder(stateDict: [String: Tensor]) throws {
        // Keys relative to the decoder (an error names `layers.…`).
        try decoder.load(stateDict: Dictionary(uniqueKeysWithValues: stateDict.compactMap { key, value in
            key.hasPrefix("decoder.") ? (String(key.dropFirst("decoder.".count)), value) : nil
        }))
    }
}

/// ReLU without gradient (the tiny autoencoder is inference-only).
private func relu(_ x: Variable) -> Variable { map(x) { max($0, 0) } }

private func map(_ x: Variable, _ f: (Float) -> Float) -> Variable {
    var t = x.value
    t.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = f(p[i]) } }
    return Variable(t)
}
