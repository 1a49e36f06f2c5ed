// Model configurations decoded from the checkpoint's own `unet/config.json` and `vae/config.json`,
// with diffusers' defaults for missing keys.
// Matches the constructor arguments of diffusers 0.42 `UNet2DConditionModel` and `AutoencoderKL`.
import Foundation

/// Down blocks of `UNet2DConditionModel` (`down_block_types`).
public enum UNetDownBlockType: String, Codable, Sendable {
    case crossAttnDownBlock2D = "CrossAttnDownBlock2D"
    case downBlock2D = "DownBlock2D"
}

/// Up blocks of `UNet2DConditionModel` (`up_block_types`).
public enum UNetUpBlockType: String, Codable, Sendable {
    case upBlock2D = "UpBlock2D"
    case crossAttnUpBlock2D = "CrossAttnUpBlock2D"
}

/// Middle block of `UNet2DConditionModel` (`mid_block_type`).
public enum UNetMidBlockType: String, Codable, Sendable {
    case unetMidBlock2DCrossAttn = "UNetMidBlock2DCrossAttn"
}

/// The UNet's added conditioning (`addition_embed_type`): SDXL's "text_time" adds an embedding of the pooled
/// text embeds and the six size/crop time ids to the time embedding.
public struct UNetTextTimeEmbedding: Equatable, Sendable {
    /// Sinusoidal width of each time id (`addition_time_embed_dim`, 256 for SDXL).
    public var timeEmbedDim: Int
    /// Input width of `add_embedding` (`projection_class_embeddings_input_dim`): pooled width + 6 × timeEmbedDim.
    public var inputDim: Int
    /// Number of time ids: original size (h, w), crop top-left (y, x), target size (h, w).
    public static let timeIdCount = 6
    /// Width of the pooled text embeds this UNet expects.
    public var textEmbedDim: Int { inputDim - Self.timeIdCount * timeEmbedDim }

    public init(timeEmbedDim: Int, inputDim: Int) {
        self.timeEmbedDim = timeEmbedDim
        self.inputDim = inputDim
    }
}

/// `UNet2DConditionModel` hyper-parameters (SD-1.x / SD-2.x / SDXL subset). Per-level options are stored
/// resolved to one entry per down block (diffusers accepts an int for all or a list).
public struct UNet2DConditionConfig: Equatable, Sendable {
    public var sampleSize: Int?
    public var inChannels: Int
    public var outChannels: Int
    public var centerInputSample: Bool
    public var flipSinToCos: Bool
    public var freqShift: Float
    public var downBlockTypes: [UNetDownBlockType]
    /// nil: no middle block (`mid_block_type: null`).
    public var midBlockType: UNetMidBlockType?
    public var upBlockTypes: [UNetUpBlockType]
    /// Per down block; up blocks use the reversed list. (The cross-attention middle block ignores it, as in diffusers.)
    public var onlyCrossAttention: [Bool]
    public var blockOutChannels: [Int]
    public var layersPerBlock: [Int]
    public var downsamplePadding: Int
    public var midBlockScaleFactor: Float
    public var normNumGroups: Int
    public var normEps: Float
    public var crossAttentionDim: [Int]
    public var transformerLayersPerBlock: [Int]
    /// Number of attention heads per level. diffusers' `attention_head_dim` means the number of heads
    /// (its naming bug); `num_attention_heads`, when given, takes precedence.
    public var attentionHeads: [Int]
    public var useLinearProjection: Bool
    /// diffusers computes attention scores in Float32 under fp16 when set; this port computes in Float32
    /// throughout, so the flag does not change the computation.
    public var upcastAttention: Bool
    public var convInKernel: Int
    public var convOutKernel: Int
    /// SDXL's added conditioning (`addition_embed_type: "text_time"`); nil for SD-1.x/2.x.
    public var textTime: UNetTextTimeEmbedding?

    /// Time embedding width: 4 × the first block's channels.
    public var timeEmbedDim: Int { blockOutChannels[0] * 4 }

    public init(sampleSize: Int? = nil, inChannels: Int = 4, outChannels: Int = 4, centerInputSample: Bool = false,
                flipSinToCos: Bool = true, freqShift: Float = 0,
                downBlockTypes: [UNetDownBlockType] = [.crossAttnDownBlock2D, .crossAttnDownBlock2D,
                                                       .crossAttnDownBlock2D, .downBlock2D],
                midBlockType: UNetMidBlockType? = .unetMidBlock2DCrossAttn,
                upBlockTypes: [UNetUpBlockType] = [.upBlock2D, .crossAttnUpBlock2D, .crossAttnUpBlock2D,
                                                   .crossAttnUpBlock2D],
                onlyCrossAttention: [Bool]? = nil,
                blockOutChannels: [Int] = [320, 640, 1280, 1280], layersPerBlock: [Int]? = nil,
                downsamplePadding: Int = 1, midBlockScaleFactor: Float = 1, normNumGroups: Int = 32,
                normEps: Float = 1e-5, crossAttentionDim: [Int]? = nil, transformerLayersPerBlock: [Int]? = nil,
                attentionHeads: [Int]? = nil, useLinearProjection: Bool = false, upcastAttention: Bool = false,
                convInKernel: Int = 3, convOutKernel: Int = 3, textTime: UNetTextTimeEmbedding? = nil) {
        let n = downBlockTypes.count
        self.sampleSize = sampleSize
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.centerInputSample = centerInputSample
        self.flipSinToCos = flipSinToCos
        self.freqShift = freqShift
        self.downBlockTypes = downBlockTypes
        self.midBlockType = midBlockType
        self.upBlockTypes = upBlockTypes
        self.onlyCrossAttention = onlyCrossAttention ?? Array(repeating: false, count: n)
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock ?? Array(repeating: 2, count: n)
        self.downsamplePadding = downsamplePadding
        self.midBlockScaleFactor = midBlockScaleFactor
        self.normNumGroups = normNumGroups
        self.normEps = normEps
        self.crossAttentionDim = crossAttentionDim ?? Array(repeating: 1280, count: n)
        self.transformerLayersPerBlock = transformerLayersPerBlock ?? Array(repeating: 1, count: n)
        self.attentionHeads = attentionHeads ?? Array(repeating: 8, count: n)
        self.useLinearProjection = useLinearProjection
        self.upcastAttention = upcastAttention
        self.convInKernel = convInKernel
        self.convOutKernel = convOutKernel
        self.textTime = textTime
    }

    /// Stable Diffusion 1.x (`runwayml/stable-diffusion-v1-5` `unet/config.json`).
    public static let sd15 = UNet2DConditionConfig(sampleSize: 64, crossAttentionDim: [768, 768, 768, 768])

    /// Stable Diffusion 2.1 768-v (`stabilityai/stable-diffusion-2-1` `unet/config.json`).
    public static let sd21 = UNet2DConditionConfig(
        sampleSize: 96, crossAttentionDim: [1024, 1024, 1024, 1024], attentionHeads: [5, 10, 20, 20],
        useLinearProjection: true, upcastAttention: true)

    /// Stable Diffusion XL base 1.0 (`stabilityai/stable-diffusion-xl-base-1.0` `unet/config.json`).
    public static let sdxl = UNet2DConditionConfig(
        sampleSize: 128, downBlockTypes: [.downBlock2D, .crossAttnDownBlock2D, .crossAttnDownBlock2D],
        upBlockTypes: [.crossAttnUpBlock2D, .crossAttnUpBlock2D, .upBlock2D], blockOutChannels: [320, 640, 1280],
        crossAttentionDim: [2048, 2048, 2048], transformerLayersPerBlock: [1, 2, 10], attentionHeads: [5, 10, 20],
        useLinearProjection: true, textTime: UNetTextTimeEmbedding(timeEmbedDim: 256, inputDim: 2816))

    /// A small SD-1-like UNet for tests and benchmarks (32/64 channels, 4 heads, context width 32).
    public static let tiny = UNet2DConditionConfig(
        sampleSize: 16, downBlockTypes: [.crossAttnDownBlock2D, .downBlock2D],
        upBlockTypes: [.upBlock2D, .crossAttnUpBlock2D], blockOutChannels: [32, 64], layersPerBlock: [1, 1],
        normNumGroups: 8, crossAttentionDim: [32, 32], attentionHeads: [4, 4])

    /// Reads `unet/config.json`.
    public init(contentsOf url: URL) throws {
        self = try loadConfiguration(Self.self, contentsOf: url)
    }

    /// Decodes a config from JSON bytes; `file` names the source in errors.
    public init(jsonData: Data, file: String = "config.json") throws {
        self = try decodeConfiguration(Self.self, from: jsonData, file: file)
    }

    /// Checks the channel, group and head counts that the blocks rely on.
    func validate(file: String) throws {
        let n = downBlockTypes.count
        func bad(_ key: String, _ reason: String) -> ConfigurationError { .invalid(option: key, reason: reason, file: file) }
        guard n > 0 else { throw bad("down_block_types", "empty") }
        guard upBlockTypes.count == n else { throw bad("up_block_types", "\(upBlockTypes.count) up blocks for \(n) down blocks") }
        guard blockOutChannels.count == n else { throw bad("block_out_channels", "\(blockOutChannels.count) entries for \(n) down blocks") }
        guard normNumGroups > 0 else { throw bad("norm_num_groups", "must be positive") }
        for (i, c) in blockOutChannels.enumerated() {
            guard c > 0, c % normNumGroups == 0 else { throw bad("block_out_channels", "\(c) channels at level \(i) not divisible by norm_num_groups \(normNumGroups)") }
            guard attentionHeads[i] > 0, c % attentionHeads[i] == 0 else { throw bad("attention_head_dim", "\(c) channels at level \(i) not divisible into \(attentionHeads[i]) heads") }
        }
        guard layersPerBlock.allSatisfy({ $0 > 0 }) else { throw bad("layers_per_block", "must be positive") }
        guard transformerLayersPerBlock.allSatisfy({ $0 > 0 }) else { throw bad("transformer_layers_per_block", "must be positive") }
        guard convInKernel % 2 == 1, convOutKernel % 2 == 1 else { throw bad("conv_in_kernel", "kernels must be odd") }
        if let textTime {
            guard textTime.timeEmbedDim > 0 else { throw bad("addition_time_embed_dim", "must be positive") }
            guard textTime.textEmbedDim > 0 else {
                throw bad("projection_class_embeddings_input_dim", "\(textTime.inputDim) leaves no room for pooled text embeds "
                          + "beside 6 × addition_time_embed_dim \(textTime.timeEmbedDim)")
            }
        }
    }
}

extension UNet2DConditionConfig: Decodable {
    public init(from decoder: Swift.Decoder) throws {
        let r = try ConfigReader(decoder)
        // Options that change the architecture in ways this port does not implement.
        for key in ["class_embed_type", "num_class_embeds",
                    "encoder_hid_dim", "encoder_hid_dim_type", "time_embedding_dim", "time_embedding_act_fn",
                    "timestep_post_act", "time_cond_proj_dim",
                    "reverse_transformer_layers_per_block", "cross_attention_norm"] {
            try r.requireNull(key)
        }
        try r.require("addition_embed_type", in: [.string("text_time")])
        var textTime: UNetTextTimeEmbedding?
        if try r.raw("addition_embed_type") == .string("text_time") {
            let dim: Int? = try r.value("addition_time_embed_dim", nil as Int?)
            let input: Int? = try r.value("projection_class_embeddings_input_dim", nil as Int?)
            guard let dim, let input else {
                throw r.invalid(dim == nil ? "addition_time_embed_dim" : "projection_class_embeddings_input_dim",
                                "required with addition_embed_type \"text_time\"")
            }
            textTime = UNetTextTimeEmbedding(timeEmbedDim: dim, inputDim: input)
        }
        try r.require("act_fn", in: [.string("silu")])
        try r.require("time_embedding_type", in: [.string("positional")])
        try r.require("resnet_time_scale_shift", in: [.string("default")])
        try r.require("attention_type", in: [.string("default")])
        for key in ["resnet_skip_time_act", "dual_cross_attention", "class_embeddings_concat"] {
            try r.require(key, in: [.bool(false)])
        }
        if try r.raw("norm_num_groups") == .null, r.container.contains(JSONKey("norm_num_groups")) {
            throw r.unsupported("norm_num_groups", "null")
        }

        let downNames: [String] = try r.value("down_block_types", ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                                                   "CrossAttnDownBlock2D", "DownBlock2D"])
        let upNames: [String] = try r.value("up_block_types", ["UpBlock2D", "CrossAttnUpBlock2D",
                                                               "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])
        let down = try downNames.map { name -> UNetDownBlockType in
            guard let t = UNetDownBlockType(rawValue: name) else { throw r.unsupported("down_block_types", "\"\(name)\"") }
            return t
        }
        let up = try upNames.map { name -> UNetUpBlockType in
            guard let t = UNetUpBlockType(rawValue: name) else { throw r.unsupported("up_block_types", "\"\(name)\"") }
            return t
        }
        var mid: UNetMidBlockType? = .unetMidBlock2DCrossAttn
        if r.container.contains(JSONKey("mid_block_type")) {
            let name: String? = try r.value("mid_block_type", nil as String?)
            if let name {
                guard let t = UNetMidBlockType(rawValue: name) else { throw r.unsupported("mid_block_type", "\"\(name)\"") }
                mid = t
            } else {
                mid = nil
            }
        }
        let n = down.count
        if case .array(let items) = try r.raw("transformer_layers_per_block"), items.contains(where: { if case .array = $0 { return true } else { return false } }) {
            throw r.unsupported("transformer_layers_per_block", try r.raw("transformer_layers_per_block").description)
        }
        let headDims = try r.perBlock("attention_head_dim", 8, count: n)
        let numHeads: [Int]? = try r.raw("num_attention_heads") == .null ? nil : try r.perBlock("num_attention_heads", 8, count: n)
        let onlyCross = try r.perBlock("only_cross_attention", false, count: n)
        let sampleSize: Int?
        switch try r.raw("sample_size") {
        case .null: sampleSize = nil
        case .array(let hw) where hw.count == 2 && hw[0] == hw[1]:
            sampleSize = try r.value("sample_size", [Int]())[0]
        case .array(let hw): throw r.unsupported("sample_size", JSONValue.array(hw).description)
        default: sampleSize = try r.value("sample_size", 0)
        }

        self.init(
            sampleSize: sampleSize,
            inChannels: try r.value("in_channels", 4),
            outChannels: try r.value("out_channels", 4),
            centerInputSample: try r.value("center_input_sample", false),
            flipSinToCos: try r.value("flip_sin_to_cos", true),
            freqShift: try r.value("freq_shift", 0),
            downBlockTypes: down, midBlockType: mid, upBlockTypes: up,
            onlyCrossAttention: onlyCross,
            blockOutChannels: try r.value("block_out_channels", [320, 640, 1280, 1280]),
            layersPerBlock: try r.perBlock("layers_per_block", 2, count: n),
            downsamplePadding: try r.value("downsample_padding", 1),
            midBlockScaleFactor: try r.value("mid_block_scale_factor", 1),
            normNumGroups: try r.value("norm_num_groups", 32),
            normEps: try r.value("norm_eps", 1e-5),
            crossAttentionDim: try r.perBlock("cross_attention_dim", 1280, count: n),
            transformerLayersPerBlock: try r.perBlock("transformer_layers_per_block", 1, count: n),
            attentionHeads: numHeads ?? headDims,
            useLinearProjection: try r.value("use_linear_projection", false),
            upcastAttention: try r.value("upcast_attention", false),
            convInKernel: try r.value("conv_in_kernel", 3),
            convOutKernel: try r.value("conv_out_kernel", 3),
            textTime: textTime)
        try validate(file: r.file)
    }
}

extension UNet2DConditionConfig: Encodable {
    /// diffusers `config.json` keys (`attention_head_dim` holds the number of heads, as diffusers reads it).
    public func encode(to encoder: Swift.Encoder) throws {
        var w = try ConfigWriter(encoder, className: "UNet2DConditionModel")
        if let sampleSize { try w.put("sample_size", sampleSize) } else { try w.putNull("sample_size") }
        try w.put("in_channels", inChannels)
        try w.put("out_channels", outChannels)
        try w.put("center_input_sample", centerInputSample)
        try w.put("flip_sin_to_cos", flipSinToCos)
        try w.put("freq_shift", freqShift)
        try w.put("down_block_types", downBlockTypes)
        if let midBlockType { try w.put("mid_block_type", midBlockType) } else { try w.putNull("mid_block_type") }
        try w.put("up_block_types", upBlockTypes)
        try w.putPerBlock("only_cross_attention", onlyCrossAttention)
        try w.put("block_out_channels", blockOutChannels)
        try w.putPerBlock("layers_per_block", layersPerBlock)
        try w.put("downsample_padding", downsamplePadding)
        try w.put("mid_block_scale_factor", midBlockScaleFactor)
        try w.put("act_fn", "silu")
        try w.put("norm_num_groups", normNumGroups)
        try w.put("norm_eps", normEps)
        try w.putPerBlock("cross_attention_dim", crossAttentionDim)
        try w.putPerBlock("transformer_layers_per_block", transformerLayersPerBlock)
        try w.putPerBlock("attention_head_dim", attentionHeads)
        try w.putNull("num_attention_heads")
        try w.put("use_linear_projection", useLinearProjection)
        try w.put("upcast_attention", upcastAttention)
        try w.put("conv_in_kernel", convInKernel)
        try w.put("conv_out_kernel", convOutKernel)
        if let textTime {
            try w.put("addition_embed_type", "text_time")
            try w.put("addition_time_embed_dim", textTime.timeEmbedDim)
            try w.put("projection_class_embeddings_input_dim", textTime.inputDim)
        }
    }

    /// The config as diffusers' `unet/config.json`.
    public func jsonData() throws -> Data { try encodeConfiguration(self) }
}

/// Encoder down blocks of `AutoencoderKL` (`down_block_types`).
public enum VAEDownBlockType: String, Codable, Sendable {
    case downEncoderBlock2D = "DownEncoderBlock2D"
}

/// Decoder up blocks of `AutoencoderKL` (`up_block_types`).
public enum VAEUpBlockType: String, Codable, Sendable {
    case upDecoderBlock2D = "UpDecoderBlock2D"
}

/// `AutoencoderKL` hyper-parameters.
public struct AutoencoderKLConfig: Equatable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    public var downBlockTypes: [VAEDownBlockType]
    public var upBlockTypes: [VAEUpBlockType]
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var latentChannels: Int
    public var normNumGroups: Int
    public var sampleSize: Int
    /// Latents are `scaling_factor × (z − shift_factor)` for the UNet.
    public var scalingFactor: Float
    public var shiftFactor: Float?
    public var useQuantConv: Bool
    public var usePostQuantConv: Bool
    public var midBlockAddAttention: Bool

    /// Spatial down-sampling factor between images and latents (2^(levels − 1)).
    public var downsamplingFactor: Int { 1 << (blockOutChannels.count - 1) }

    public init(inChannels: Int = 3, outChannels: Int = 3, downBlockTypes: [VAEDownBlockType]? = nil,
                upBlockTypes: [VAEUpBlockType]? = nil, blockOutChannels: [Int] = [64], layersPerBlock: Int = 1,
                latentChannels: Int = 4, normNumGroups: Int = 32, sampleSize: Int = 32,
                scalingFactor: Float = 0.18215, shiftFactor: Float? = nil, useQuantConv: Bool = true,
                usePostQuantConv: Bool = true, midBlockAddAttention: Bool = true) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.downBlockTypes = downBlockTypes ?? Array(repeating: .downEncoderBlock2D, count: blockOutChannels.count)
        self.upBlockTypes = upBlockTypes ?? Array(repeating: .upDecoderBlock2D, count: blockOutChannels.count)
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
        self.latentChannels = latentChannels
        self.normNumGroups = normNumGroups
        self.sampleSize = sampleSize
        self.scalingFactor = scalingFactor
        self.shiftFactor = shiftFactor
        self.useQuantConv = useQuantConv
        self.usePostQuantConv = usePostQuantConv
        self.midBlockAddAttention = midBlockAddAttention
    }

    /// The Stable Diffusion 1.x/2.x VAE (`vae/config.json`).
    public static let sd15 = AutoencoderKLConfig(blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2,
                                                 sampleSize: 512)

    /// A small VAE for tests and benchmarks.
    public static let tiny = AutoencoderKLConfig(blockOutChannels: [16, 32], layersPerBlock: 1, normNumGroups: 8)

    /// Reads `vae/config.json`.
    public init(contentsOf url: URL) throws {
        self = try loadConfiguration(Self.self, contentsOf: url)
    }

    /// Decodes a config from JSON bytes; `file` names the source in errors.
    public init(jsonData: Data, file: String = "config.json") throws {
        self = try decodeConfiguration(Self.self, from: jsonData, file: file)
    }
}

extension AutoencoderKLConfig: Decodable {
    public init(from decoder: Swift.Decoder) throws {
        let r = try ConfigReader(decoder)
        try r.require("act_fn", in: [.string("silu")])
        try r.requireNull("latents_mean")
        try r.requireNull("latents_std")
        let channels: [Int] = try r.value("block_out_channels", [64])
        let downNames: [String] = try r.value("down_block_types", ["DownEncoderBlock2D"])
        let upNames: [String] = try r.value("up_block_types", ["UpDecoderBlock2D"])
        let down = try downNames.map { name -> VAEDownBlockType in
            guard let t = VAEDownBlockType(rawValue: name) else { throw r.unsupported("down_block_types", "\"\(name)\"") }
            return t
        }
        let up = try upNames.map { name -> VAEUpBlockType in
            guard let t = VAEUpBlockType(rawValue: name) else { throw r.unsupported("up_block_types", "\"\(name)\"") }
            return t
        }
        guard !channels.isEmpty, down.count == channels.count, up.count == channels.count else {
            throw r.invalid("block_out_channels", "\(channels.count) entries for \(down.count) down and \(up.count) up blocks")
        }
        let groups: Int = try r.value("norm_num_groups", 32)
        guard groups > 0, channels.allSatisfy({ $0 > 0 && $0 % groups == 0 }) else {
            throw r.invalid("norm_num_groups", "\(groups) groups do not divide block_out_channels \(channels)")
        }
        self.init(inChannels: try r.value("in_channels", 3), outChannels: try r.value("out_channels", 3),
                  downBlockTypes: down, upBlockTypes: up, blockOutChannels: channels,
                  layersPerBlock: try r.value("layers_per_block", 1),
                  latentChannels: try r.value("latent_channels", 4), normNumGroups: groups,
                  sampleSize: try r.value("sample_size", 32), scalingFactor: try r.value("scaling_factor", 0.18215),
                  shiftFactor: try r.value("shift_factor", nil as Float?),
                  useQuantConv: try r.value("use_quant_conv", true),
                  usePostQuantConv: try r.value("use_post_quant_conv", true),
                  midBlockAddAttention: try r.value("mid_block_add_attention", true))
    }
}

extension AutoencoderKLConfig: Encodable {
    public func encode(to encoder: Swift.Encoder) throws {
        var w = try ConfigWriter(encoder, className: "AutoencoderKL")
        try w.put("in_channels", inChannels)
        try w.put("out_channels", outChannels)
        try w.put("down_block_types", downBlockTypes)
        try w.put("up_block_types", upBlockTypes)
        try w.put("block_out_channels", blockOutChannels)
        try w.put("layers_per_block", layersPerBlock)
        try w.put("act_fn", "silu")
        try w.put("latent_channels", latentChannels)
        try w.put("norm_num_groups", normNumGroups)
        try w.put("sample_size", sampleSize)
        try w.put("scaling_factor", scalingFactor)
        if let shiftFactor { try w.put("shift_factor", shiftFactor) } else { try w.putNull("shift_factor") }
        try w.put("use_quant_conv", useQuantConv)
        try w.put("use_post_quant_conv", usePostQuantConv)
        try w.put("mid_block_add_attention", midBlockAddAttention)
    }

    /// The config as diffusers' `vae/config.json`.
    public func jsonData() throws -> Data { try encodeConfiguration(self) }
}
