// Port of diffusers 0.42 `models/transformers/transformer_2d.py` `Transformer2DModel` (continuous input)
// and `models/attention.py` `BasicTransformerBlock`, `FeedForward` with `GEGLU` (layer_norm, geglu).
import Autograd
import NN
import TensorCore

/// GEGLU input projection: `proj` [2·inner, dim]; out = h · gelu(gate) with (h, gate) the two halves.
public final class GEGLU: Module {
    public let proj: Linear

    public init(dim: Int, innerDim: Int) {
        proj = Linear(inFeatures: dim, outFeatures: innerDim * 2)
        super.init()
    }

    public func callAsFunction(_ x: Variable) throws -> Variable {
        try geglu(proj(x))
    }
}

/// `ff.net.0` = GEGLU, `ff.net.1` = dropout (p = 0 in SD configs: the identity),
/// `ff.net.2` = Linear(inner, dim). inner = 4·dim.
public final class FeedForward: Module {
    public let net: ModuleList<Module>
    let project: GEGLU
    let output: Linear

    public init(dim: Int, multiplier: Int = 4) {
        project = GEGLU(dim: dim, innerDim: dim * multiplier)
        output = Linear(inFeatures: dim * multiplier, outFeatures: dim)
        net = ModuleList([project, Dropout(p: 0), output])
        super.init()
    }

    public override func namedChildren() -> [(String, Module)] { [("net", net)] }

    public func callAsFunction(_ x: Variable) throws -> Variable {
        try output(project(x))
    }
}

/// Pre-norm transformer block on tokens [N, L, dim]: self-attention (cross-attention when
/// `onlyCrossAttention`), cross-attention on the context, GEGLU feed-forward, each with a residual.
public final class BasicTransformerBlock: Module {
    public let norm1: LayerNorm
    public let attn1: NN.Attention
    public let norm2: LayerNorm
    public let attn2: NN.Attention
    public let norm3: LayerNorm
    public let ff: FeedForward
    public let onlyCrossAttention: Bool

    public init(dim: Int, heads: Int, headDim: Int, crossAttentionDim: Int, onlyCrossAttention: Bool) {
        norm1 = LayerNorm(dim: dim, eps: 1e-5)
        attn1 = NN.Attention(queryDim: dim, contextDim: onlyCrossAttention ? crossAttentionDim : nil,
                          heads: heads, dimHead: headDim)
        norm2 = LayerNorm(dim: dim, eps: 1e-5)
        attn2 = NN.Attention(queryDim: dim, contextDim: crossAttentionDim, heads: heads, dimHead: headDim)
        norm3 = LayerNorm(dim: dim, eps: 1e-5)
        ff = FeedForward(dim: dim)
        self.onlyCrossAttention = onlyCrossAttention
        super.init()
    }

    /// x [N, L, dim], context [N, S, crossAttentionDim] → [N, L, dim].
    public func callAsFunction(_ x: Variable, context: Variable) throws -> Variable {
        let n1 = try norm1(x)
        var h = try x + attn1(n1, context: onlyCrossAttention ? context : nil)
        h = try h + attn2(norm2(h), context: context)
        return try h + ff(norm3(h))
    }
}

/// proj_in / proj_out: a 1×1 convolution (SD-1) or a Linear (SD-2, `use_linear_projection`). On NHWC
/// both are the same map on the channel axis; they differ only in checkpoint shape ([C, C, 1, 1] vs [C, C]).
enum ChannelProjection {
    case conv(Conv2d)
    case linear(Linear)

    init(channels: Int, linear: Bool) {
        self = linear ? .linear(Linear(inFeatures: channels, outFeatures: channels))
                      : .conv(Conv2d(inChannels: channels, outChannels: channels, kernelSize: 1, padding: 0))
    }

    var module: Module {
        switch self {
        case .conv(let c): return c
        case .linear(let l): return l
        }
    }

    /// NHWC [N, H, W, C] → [N, H, W, C].
    func callAsFunction(_ x: Variable) throws -> Variable {
        switch self {
        case .conv(let c): return try c(x)
        case .linear(let l): return try l(x)
        }
    }
}

/// GroupNorm(eps 1e-6) → proj_in → transformer blocks on the tokens [N, H·W, C] → proj_out → + input.
/// NHWC [N, H, W, C] with context [N, S, D] → [N, H, W, C].
public final class Transformer2DModel: Module {
    public let norm: GroupNorm
    let projIn: ChannelProjection
    public let transformer_blocks: ModuleList<BasicTransformerBlock>
    let projOut: ChannelProjection

    public init(channels: Int, heads: Int, crossAttentionDim: Int, layers: Int, groups: Int,
                useLinearProjection: Bool, onlyCrossAttention: Bool) {
        norm = GroupNorm(groups: groups, channels: channels, eps: 1e-6)
        projIn = ChannelProjection(channels: channels, linear: useLinearProjection)
        transformer_blocks = ModuleList((0..<layers).map { _ in
            BasicTransformerBlock(dim: channels, heads: heads, headDim: channels / heads,
                                  crossAttentionDim: crossAttentionDim, onlyCrossAttention: onlyCrossAttention)
        })
        projOut = ChannelProjection(channels: channels, linear: useLinearProjection)
        super.init()
    }

    public override func namedChildren() -> [(String, Module)] {
        [("norm", norm), ("proj_in", projIn.module), ("transformer_blocks", transformer_blocks),
         ("proj_out", projOut.module)]
    }

    /// Recompute this block's activations during backward instead of keeping them.
    public var gradientCheckpointing = false

    public func callAsFunction(_ x: Variable, context: Variable) throws -> Variable {
        guard gradientCheckpointing else { return try forward(x, context: context) }
        return try checkpoint([x, context]) { v in [try self.forward(v[0], context: v[1])] }[0]
    }

    private func forward(_ x: Variable, context: Variable) throws -> Variable {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var tokens = try reshape(projIn(norm(x)), [n, h * w, c])           // [N, H·W, C]
        for block in transformer_blocks { tokens = try block(tokens, context: context) }
        return try projOut(reshape(tokens, [n, h, w, c])) + x
    }
}
