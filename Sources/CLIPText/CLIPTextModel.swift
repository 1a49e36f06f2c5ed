// port of transformers/models/clip/modeling_clip.py (transformers 5.23): CLIPTextModel and its parts.
//
// Pre-LayerNorm transformer with a causal mask: embeddings (token + position) → N × [x + attn(ln1(x)),
// x + mlp(ln2(x))] → final layer norm. Property names are transformers 5's key segments, so
// `stateDict()` has its keys (`encoder.layers.0.self_attn.q_proj.weight`); `loadCheckpoint` also takes
// SD-1.x files whose keys start with `text_model.` and carry the `embeddings.position_ids` buffer.
// Token sequences are [N, L, C].

import Autograd
import NN
import TensorCore

/// Token and position embeddings (CLIPTextEmbeddings).
public final class CLIPTextEmbeddings: Module {
    public let token_embedding: Embedding        // [vocab, C]
    public let position_embedding: Embedding     // [maxPositions, C]

    init(_ config: CLIPTextConfig) {
        token_embedding = Embedding(count: config.vocabSize, dim: config.hiddenSize)
        position_embedding = Embedding(count: config.maxPositionEmbeddings, dim: config.hiddenSize)
        super.init()
    }

    /// ids [N·L] (row-major [N, L]) → [N, L, C]; position i gets row i of the position table.
    func callAsFunction(_ ids: [Int], batch: Int, length: Int) throws -> Variable {
        let tokens = try token_embedding(ids, shape: [batch, length])               // [N, L, C]
        let positions = try position_embedding(Array(0..<length), shape: [1, length]) // [1, L, C]
        return try add(tokens, positions)
    }
}

/// Multi-head causal self-attention with biased projections (CLIPAttention).
public final class CLIPAttention: Module {
    public let k_proj: Linear                    // [C, C]
    public let v_proj: Linear                    // [C, C]
    public let q_proj: Linear                    // [C, C]
    public let out_proj: Linear                  // [C, C]
    public let heads: Int

    init(_ config: CLIPTextConfig) {
        let c = config.hiddenSize
        k_proj = Linear(inFeatures: c, outFeatures: c)
        v_proj = Linear(inFeatures: c, outFeatures: c)
        q_proj = Linear(inFeatures: c, outFeatures: c)
        out_proj = Linear(inFeatures: c, outFeatures: c)
        heads = config.numAttentionHeads
        super.init()
    }

    /// x [N, L, C] → [N, L, C]; query i attends to keys 0...i, scores scaled by 1/√(C/heads).
    public func callAsFunction(_ x: Variable) throws -> Variable {
        let q = try q_proj(x), k = try k_proj(x), v = try v_proj(x)       // [N, L, C] each
        let o = try attention(q, k, v, heads: heads, causal: true)         // [N, L, C]
        return try out_proj(o)
    }
}

/// fc1 → activation → fc2 (CLIPMLP).
public final class CLIPMLP: Module {
    public let fc1: Linear                       // [I, C]
    public let fc2: Linear                       // [C, I]
    public let activation: CLIPActivation

    init(_ config: CLIPTextConfig) {
        fc1 = Linear(inFeatures: config.hiddenSize, outFeatures: config.intermediateSize)
        fc2 = Linear(inFeatures: config.intermediateSize, outFeatures: config.hiddenSize)
        activation = config.hiddenAct
        super.init()
    }

    /// x [N, L, C] → [N, L, C].
    public func callAsFunction(_ x: Variable) throws -> Variable {
        let h = try fc1(x)                                                 // [N, L, I]
        switch activation {
        case .quickGELU: return try fc2(quickGELU(h))
        case .gelu: return try fc2(gelu(h))
        }
    }
}

/// One pre-LN transformer layer (CLIPEncoderLayer).
public final class CLIPEncoderLayer: Module {
    public let self_attn: CLIPAttention
    public let layer_norm1: LayerNorm            // [C]
    public let mlp: CLIPMLP
    public let layer_norm2: LayerNorm            // [C]

    init(_ config: CLIPTextConfig) {
        self_attn = CLIPAttention(config)
        layer_norm1 = LayerNorm(dim: config.hiddenSize, eps: config.layerNormEps)
        mlp = CLIPMLP(config)
        layer_norm2 = LayerNorm(dim: config.hiddenSize, eps: config.layerNormEps)
        super.init()
    }

    /// x [N, L, C] → [N, L, C].
    public func callAsFunction(_ x: Variable) throws -> Variable {
        let h = try add(x, self_attn(layer_norm1(x)))
        return try add(h, mlp(layer_norm2(h)))
    }
}

/// The stack of encoder layers (CLIPEncoder).
public final class CLIPEncoder: Module {
    public let layers: ModuleList<CLIPEncoderLayer>

    init(_ config: CLIPTextConfig) {
        layers = ModuleList((0..<config.numHiddenLayers).map { _ in CLIPEncoderLayer(config) })
        super.init()
    }
}

/// What `CLIPTextModel` computes for a batch of id rows.
public struct CLIPTextOutput {
    /// [N, L, C]: the last layer's output after the final layer norm (SD's text conditioning).
    public var lastHiddenState: Variable
    /// numHiddenLayers + 1 tensors [N, L, C]: the embeddings, then each layer's output (no final norm),
    /// as transformers' `output_hidden_states=True`.
    public var hiddenStates: [Variable]
    /// [N, C]: `lastHiddenState` at each row's EOS position (see `CLIPTextModel.eosPositions`); gradients flow
    /// back into those rows (SDXL's pooled text embeds when the text encoders train).
    public var pooledOutput: Variable
}

/// CLIP's text encoder (transformers' CLIPTextModel without projection).
public final class CLIPTextModel: Module {
    public let embeddings: CLIPTextEmbeddings
    public let encoder: CLIPEncoder
    public let final_layer_norm: LayerNorm       // [C]
    public let config: CLIPTextConfig

    /// A model with zero weights; set them with `loadCheckpoint` or `initializeParameters(random:)`.
    public init(config: CLIPTextConfig) throws {
        try config.validate()
        self.config = config
        embeddings = CLIPTextEmbeddings(config)
        encoder = CLIPEncoder(config)
        final_layer_norm = LayerNorm(dim: config.hiddenSize, eps: config.layerNormEps)
        super.init()
    }

    /// Runs the whole model on `ids` (N rows of equal length L ≤ max_position_embeddings), no padding mask
    /// (as Stable Diffusion calls it).
    public func callAsFunction(_ ids: [[Int]]) throws -> CLIPTextOutput {
        let (batch, length) = try checkShape(ids)
        var h = try embeddings(ids.flatMap { $0 }, batch: batch, length: length)   // [N, L, C]
        var hiddenStates = [h]
        for layer in encoder.layers {
            h = try layer(h)
            hiddenStates.append(h)
        }
        let last = try final_layer_norm(h)
        return CLIPTextOutput(lastHiddenState: last, hiddenStates: hiddenStates,
                              pooledOutput: try pooled(last, at: eosPositions(ids)))
    }

    /// The text conditioning of diffusers' `encode_prompt`: the final layer norm applied to the output of
    /// layer `numHiddenLayers − clipSkip` (clipSkip 0 = `lastHiddenState`; 1 = the penultimate layer).
    /// Layers after that one are not run. ids [N][L] → [N, L, C].
    public func encode(_ ids: [[Int]], clipSkip: Int = 0) throws -> Variable {
        try final_layer_norm(hiddenState(ids, skippingLast: clipSkip))
    }

    /// transformers' `hidden_states[-(skip + 1)]`: the output of layer `numHiddenLayers − skip`, without the
    /// final layer norm (SDXL conditions on `hidden_states[-2]`, skip 1). Later layers are not run.
    /// ids [N][L] → [N, L, C].
    public func hiddenState(_ ids: [[Int]], skippingLast skip: Int) throws -> Variable {
        guard (0...config.numHiddenLayers).contains(skip) else {
            throw CLIPTextError.invalidInput("clip skip \(skip) is outside 0...\(config.numHiddenLayers)")
        }
        let (batch, length) = try checkShape(ids)
        var h = try embeddings(ids.flatMap { $0 }, batch: batch, length: length)   // [N, L, C]
        for layer in encoder.layers.prefix(config.numHiddenLayers - skip) { h = try layer(h) }
        return h
    }

    /// Per row, the position the pooled output is read at. Configs with `eos_token_id` 2 (written before
    /// transformers PR #24773, e.g. SD-1.x) take the first largest id (CLIP's EOS 49407 is the largest);
    /// others take the first occurrence of `eos_token_id` (0 when it does not occur).
    public func eosPositions(_ ids: [[Int]]) -> [Int] {
        ids.map { row in
            if config.eosTokenID == 2 {
                guard let largest = row.max() else { return 0 }
                return row.firstIndex(of: largest) ?? 0
            }
            return row.firstIndex(of: config.eosTokenID) ?? 0
        }
    }

    /// Sets every weight from a checkpoint: keys with or without the `text_model.` prefix (SD-1.x files
    /// have it, transformers 5 writes none); the non-parameter buffer `embeddings.position_ids` is skipped.
    /// Strict otherwise: an unused tensor, missing parameter or wrong shape throws a `StateDictError`.
    public func loadCheckpoint(_ stateDict: [String: Tensor]) throws {
        let prefix = "text_model."
        var normalized: [String: Tensor] = [:]
        for (key, tensor) in stateDict {
            let name = key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)) : key
            if name == "embeddings.position_ids" { continue }
            guard normalized.updateValue(tensor, forKey: name) == nil else {
                throw StateDictError.unusedTensor(key: key, shape: tensor.shape)
            }
        }
        try load(stateDict: normalized)
    }

    private func checkShape(_ ids: [[Int]]) throws -> (batch: Int, length: Int) {
        guard let length = ids.first?.count, length > 0, ids.allSatisfy({ $0.count == length }) else {
            throw CLIPTextError.invalidInput("ids must be non-empty rows of one length, got lengths \(ids.map(\.count))")
        }
        guard length <= config.maxPositionEmbeddings else {
            throw CLIPTextError.invalidInput(
                "sequence length \(length) exceeds max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        if let bad = ids.joined().first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw CLIPTextError.invalidInput("token id \(bad) is outside the vocabulary of \(config.vocabSize)")
        }
        return (ids.count, length)
    }

    /// Rows `positions[n]` of x [N, L, C] → [N, C] (a row gather: the embedding op on the [N·L, C] rows).
    func pooled(_ x: Variable, at positions: [Int]) throws -> Variable {
        let (length, c) = (x.shape[1], x.shape[2])
        return try embedding(positions.enumerated().map { $0.offset * length + $0.element },
                             table: try reshape(x, [positions.count * length, c]))
    }
}
