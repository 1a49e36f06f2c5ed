// `text_encoder/config.json` of a CLIP text model, with transformers' `CLIPTextConfig` keys and defaults.

import Foundation
import TensorCore

/// The feed-forward activation of CLIP's MLP (`hidden_act`).
public enum CLIPActivation: String, Codable, Sendable {
    /// x·σ(1.702·x): OpenAI CLIP, SD-1.x.
    case quickGELU = "quick_gelu"
    /// Exact (erf) GELU: OpenCLIP ViT-H, SD-2.x.
    case gelu
}

/// Errors from configuring or loading a CLIP text model; each names the file or key and the shapes.
public enum CLIPTextError: Error, CustomStringConvertible {
    case invalidConfig(path: String, reason: String)
    case invalidInput(String)

    public var description: String {
        switch self {
        case .invalidConfig(let path, let reason): return "invalid CLIP text config \(path): \(reason)"
        case .invalidInput(let message): return "invalid CLIP text model input: \(message)"
        }
    }
}

/// Hyper-parameters of `CLIPTextModel`. Keys and defaults are transformers' `CLIPTextConfig`
/// (`projection_dim` and the dropout/initialiser fields are read by transformers but unused here;
/// `CLIPTextModelWithProjection` takes its projection width apart, from `projectionDim(contentsOf:)`).
public struct CLIPTextConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int = 49408
    public var hiddenSize: Int = 512
    public var intermediateSize: Int = 2048
    public var numHiddenLayers: Int = 12
    public var numAttentionHeads: Int = 8
    public var maxPositionEmbeddings: Int = 77
    public var hiddenAct: CLIPActivation = .quickGELU
    public var layerNormEps: Float = 1e-5
    /// 2 in configs written before transformers PR #24773 (SD-1.x): the pooled output is then taken at the
    /// largest id of each row; otherwise at the first occurrence of this id.
    public var eosTokenID: Int = 49407

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings"
        case hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
        case eosTokenID = "eos_token_id"
    }

    public init(vocabSize: Int = 49408, hiddenSize: Int = 512, intermediateSize: Int = 2048, numHiddenLayers: Int = 12,
                numAttentionHeads: Int = 8, maxPositionEmbeddings: Int = 77, hiddenAct: CLIPActivation = .quickGELU,
                layerNormEps: Float = 1e-5, eosTokenID: Int = 49407) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
        self.eosTokenID = eosTokenID
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPTextConfig()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        hiddenAct = try c.decodeIfPresent(CLIPActivation.self, forKey: .hiddenAct) ?? d.hiddenAct
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? d.layerNormEps
        // transformers allows a list of eos ids; the first one decides the pooling position.
        if let list = try? c.decodeIfPresent([Int].self, forKey: .eosTokenID), let first = list.first {
            eosTokenID = first
        } else {
            eosTokenID = try c.decodeIfPresent(Int.self, forKey: .eosTokenID) ?? d.eosTokenID
        }
    }

    /// Reads and validates `config.json` (a `text_encoder/` folder's).
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw CLIPTextError.invalidConfig(path: url.path, reason: "cannot read the file (\(fileErrorCause(error)))")
        }
        do {
            self = try JSONDecoder().decode(CLIPTextConfig.self, from: data)
        } catch let DecodingError.dataCorrupted(context) {
            throw CLIPTextError.invalidConfig(path: url.path, reason: Self.describe(context))
        } catch let DecodingError.typeMismatch(_, context) {
            throw CLIPTextError.invalidConfig(path: url.path, reason: Self.describe(context))
        } catch {
            throw CLIPTextError.invalidConfig(path: url.path, reason: "\(error)")
        }
        try validate(path: url.path)
    }

    /// Checks that the sizes fit together (hidden size divisible by the number of heads, …).
    public func validate(path: String = "config") throws {
        for (name, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize),
                              ("intermediate_size", intermediateSize), ("num_attention_heads", numAttentionHeads),
                              ("max_position_embeddings", maxPositionEmbeddings)] where value <= 0 {
            throw CLIPTextError.invalidConfig(path: path, reason: "\(name) must be positive, is \(value)")
        }
        guard numHiddenLayers >= 0 else {
            throw CLIPTextError.invalidConfig(path: path, reason: "num_hidden_layers must be ≥ 0, is \(numHiddenLayers)")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw CLIPTextError.invalidConfig(
                path: path, reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
    }

    /// A 2-layer, 32-wide model for tests.
    public static let tiny = CLIPTextConfig(vocabSize: 1000, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
                                            numAttentionHeads: 4, maxPositionEmbeddings: 77)

    /// CLIP ViT-L/14's text encoder (SD-1.x).
    public static let clipL = CLIPTextConfig(hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12,
                                             numAttentionHeads: 12, eosTokenID: 2)

    /// OpenCLIP ViT-bigG/14's text tower (SDXL's `text_encoder_2`, `CLIPTextModelWithProjection` with projection 1280).
    public static let bigG = CLIPTextConfig(hiddenSize: 1280, intermediateSize: 5120, numHiddenLayers: 32,
                                            numAttentionHeads: 20, hiddenAct: .gelu, eosTokenID: 2)

    private static func describe(_ context: DecodingError.Context) -> String {
        let key = context.codingPath.map(\.stringValue).joined(separator: ".")
        return key.isEmpty ? context.debugDescription : "\(key): \(context.debugDescription)"
    }
}
