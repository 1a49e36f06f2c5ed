// Analytic FLOP counts of the UNet and VAE forward passes, split as torch.utils.flop_counter splits them
// (convolutions — 1×1 projections included —, linear layers) plus attention's QKᵀ and PV products, which
// torch's counter misses on the CPU (REFERENCE.md fact 9). A multiply-add counts as 2 FLOPs.
import DiffusionModels

struct FLOPCount {
    var conv = 0.0, linear = 0.0, attention = 0.0
    var total: Double { conv + linear + attention }

    /// Output [n, h, w, cout] of a k×k convolution over cin channels.
    mutating func conv(_ n: Int, _ h: Int, _ w: Int, _ cin: Int, _ cout: Int, _ k: Int) {
        conv += 2 * Double(n * h * w) * Double(cin * cout * k * k)
    }

    mutating func linear(_ rows: Int, _ inFeatures: Int, _ outFeatures: Int) {
        linear += 2 * Double(rows) * Double(inFeatures * outFeatures)
    }

    /// QKᵀ and PV over all heads (heads · headDim = dim).
    mutating func attention(_ n: Int, _ lq: Int, _ lk: Int, _ dim: Int) {
        attention += 4 * Double(n) * Double(lq) * Double(lk) * Double(dim)
    }

    mutating func resnet(_ n: Int, _ h: Int, _ cin: Int, _ cout: Int, temb: Int?) {
        conv(n, h, h, cin, cout, 3)
        conv(n, h, h, cout, cout, 3)
        if cin != cout { conv(n, h, h, cin, cout, 1) }
        if let temb { linear(n, temb, cout) }
    }

    mutating func transformer(_ n: Int, _ h: Int, _ c: Int, tokens: Int, contextDim: Int, layers: Int,
                              linearProjection: Bool, onlyCross: Bool) {
        let l = h * h
        for _ in 0..<2 { if linearProjection { linear(n * l, c, c) } else { conv(n, h, h, c, c, 1) } }
        for _ in 0..<layers {
            linear(n * l, c, c); linear(n * l, c, c)                               // attn1 q, out
            if onlyCross { linear(n * tokens, contextDim, c); linear(n * tokens, contextDim, c) }
            else { linear(n * l, c, c); linear(n * l, c, c) }                     // attn1 k, v
            attention(n, l, onlyCross ? tokens : l, c)
            linear(n * l, c, c); linear(n * l, c, c)                               // attn2 q, out
            linear(n * tokens, contextDim, c); linear(n * tokens, contextDim, c)   // attn2 k, v
            attention(n, l, tokens, c)
            linear(n * l, c, 8 * c); linear(n * l, 4 * c, c)                       // GEGLU feed-forward
        }
    }

    /// The VAE's single-head spatial self-attention.
    mutating func spatialAttention(_ n: Int, _ h: Int, _ c: Int) {
        for _ in 0..<4 { linear(n * h * h, c, c) }
        attention(n, h * h, h * h, c)
    }

    static func unet(_ config: UNet2DConditionConfig, batch n: Int, size: Int, tokens: Int) -> FLOPCount {
        var f = FLOPCount()
        let ch = config.blockOutChannels, levels = ch.count, temb = config.timeEmbedDim
        f.conv(n, size, size, config.inChannels, ch[0], config.convInKernel)
        f.linear(n, ch[0], temb); f.linear(n, temb, temb)
        if let textTime = config.textTime { f.linear(n, textTime.inputDim, temb); f.linear(n, temb, temb) }
        func block(_ level: Int, _ h: Int, _ c: Int) -> FLOPCount {
            var t = FLOPCount()
            t.transformer(n, h, c, tokens: tokens, contextDim: config.crossAttentionDim[level],
                          layers: config.transformerLayersPerBlock[level], linearProjection: config.useLinearProjection,
                          onlyCross: config.onlyCrossAttention[level])
            return t
        }
        var skips = [(channels: ch[0], size: size)]
        var c = ch[0], h = size
        for i in 0..<levels {
            for _ in 0..<config.layersPerBlock[i] {
                f.resnet(n, h, c, ch[i], temb: temb)
                c = ch[i]
                if config.downBlockTypes[i] == .crossAttnDownBlock2D { f = f + block(i, h, c) }
                skips.append((c, h))
            }
            if i < levels - 1 {
                h = (h + 1) / 2
                f.conv(n, h, h, c, c, 3)
                skips.append((c, h))
            }
        }
        if config.midBlockType != nil {
            f.resnet(n, h, c, c, temb: temb)
            var t = FLOPCount()
            t.transformer(n, h, c, tokens: tokens, contextDim: config.crossAttentionDim[levels - 1],
                          layers: config.transformerLayersPerBlock[levels - 1],
                          linearProjection: config.useLinearProjection, onlyCross: false)
            f = f + t
            f.resnet(n, h, c, c, temb: temb)
        }
        for i in 0..<levels {
            let m = levels - 1 - i
            for _ in 0...config.layersPerBlock[m] {
                let skip = skips.removeLast()
                f.resnet(n, h, c + skip.channels, ch[m], temb: temb)
                c = ch[m]
                if config.upBlockTypes[i] == .crossAttnUpBlock2D { f = f + block(m, h, c) }
            }
            if i < levels - 1, let next = skips.last {
                h = next.size
                f.conv(n, h, h, c, c, 3)
            }
        }
        f.conv(n, size, size, ch[0], config.outChannels, config.convOutKernel)
        return f
    }

    static func vaeEncoder(_ config: AutoencoderKLConfig, batch n: Int, size: Int) -> FLOPCount {
        var f = FLOPCount()
        let ch = config.blockOutChannels
        f.conv(n, size, size, config.inChannels, ch[0], 3)
        var c = ch[0], h = size
        for i in ch.indices {
            for _ in 0..<config.layersPerBlock { f.resnet(n, h, c, ch[i], temb: nil); c = ch[i] }
            if i < ch.count - 1 { h /= 2; f.conv(n, h, h, c, c, 3) }
        }
        f.vaeMid(n, h, c, attention: config.midBlockAddAttention)
        f.conv(n, h, h, c, 2 * config.latentChannels, 3)
        if config.useQuantConv { f.conv(n, h, h, 2 * config.latentChannels, 2 * config.latentChannels, 1) }
        return f
    }

    static func vaeDecoder(_ config: AutoencoderKLConfig, batch n: Int, size: Int) -> FLOPCount {
        var f = FLOPCount()
        let rev = Array(config.blockOutChannels.reversed())
        var h = size, c = rev[0]
        if config.usePostQuantConv { f.conv(n, h, h, config.latentChannels, config.latentChannels, 1) }
        f.conv(n, h, h, config.latentChannels, c, 3)
        f.vaeMid(n, h, c, attention: config.midBlockAddAttention)
        for i in rev.indices {
            for _ in 0...config.layersPerBlock { f.resnet(n, h, c, rev[i], temb: nil); c = rev[i] }
            if i < rev.count - 1 { h *= 2; f.conv(n, h, h, c, c, 3) }
        }
        f.conv(n, h, h, c, config.outChannels, 3)
        return f
    }

    mutating func vaeMid(_ n: Int, _ h: Int, _ c: Int, attention: Bool) {
        resnet(n, h, c, c, temb: nil)
        if attention { spatialAttention(n, h, c) }
        resnet(n, h, c, c, temb: nil)
    }

    static func + (a: FLOPCount, b: FLOPCount) -> FLOPCount {
        FLOPCount(conv: a.conv + b.conv, linear: a.linear + b.linear, attention: a.attention + b.attention)
    }
}
