// LDMKeyNames: where each of our (diffusers / transformers named) parameters sits in an original-layout
// Stable Diffusion checkpoint (CompVis `ldm`: `model.diffusion_model.*`, `first_stage_model.*`,
// `cond_stage_model.*`).
//
// The correspondence is diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py (UNet, VAE, text
// encoder v1 and v2), written here as a function of our key, for any number of levels and layers per level:
// the loader builds [ldm key: our key] from our own module tree and looks the file's keys up exactly.

import DiffusionModels

/// Where the UNet's numbered blocks sit among LDM's flat `input_blocks` / `output_blocks` lists.
struct LDMUNetLayout: Equatable {
    /// Per down level (diffusers `down_blocks.i`): the `input_blocks` index of each resnet, and of the
    /// downsampler (nil on the last level).
    var inputResnets: [[Int]]
    var inputDownsample: [Int?]
    /// Per up level (diffusers `up_blocks.i`): the `output_blocks` index of each resnet; the upsampler sits in
    /// the level's last output block at sub-index 1 (no attention at that level) or 2.
    var outputResnets: [[Int]]
    var upsamplerIndex: [Int]

    init(config: UNet2DConditionConfig) {
        let levels = config.blockOutChannels.count
        var next = 1
        inputResnets = []
        inputDownsample = []
        for level in 0..<levels {
            inputResnets.append(Array(next..<(next + config.layersPerBlock[level])))
            next += config.layersPerBlock[level]
            inputDownsample.append(level < levels - 1 ? next : nil)
            if level < levels - 1 { next += 1 }
        }
        next = 0
        outputResnets = []
        upsamplerIndex = []
        for up in 0..<levels {
            let count = config.layersPerBlock[levels - 1 - up] + 1
            outputResnets.append(Array(next..<(next + count)))
            next += count
            upsamplerIndex.append(config.upBlockTypes[up] == .crossAttnUpBlock2D ? 2 : 1)
        }
    }
}

enum LDMKeyNames {
    // MARK: UNet (`model.diffusion_model.` + …)

    /// The LDM name of a UNet key, or nil when the key has no place in the layout.
    static func unet(_ key: String, _ layout: LDMUNetLayout) -> String? {
        let parts = key.split(separator: ".").map(String.init)
        func rest(_ from: Int) -> String { parts[from...].joined(separator: ".") }
        for (ours, theirs) in [("time_embedding.linear_1", "time_embed.0"), ("time_embedding.linear_2", "time_embed.2"),
                               ("conv_in", "input_blocks.0.0"), ("conv_norm_out", "out.0"), ("conv_out", "out.2"),
                               // SDXL's text_time embedding: SGM's `label_emb.0` sequential (linear, SiLU, linear).
                               ("add_embedding.linear_1", "label_emb.0.0"), ("add_embedding.linear_2", "label_emb.0.2")]
        where key.hasPrefix(ours + ".") {
            return theirs + key.dropFirst(ours.count)
        }
        guard parts.count >= 4 else { return nil }
        switch parts[0] {
        case "down_blocks", "up_blocks":
            guard let level = Int(parts[1]), let j = Int(parts[3]) else { return nil }
            let down = parts[0] == "down_blocks"
            let resnets = down ? layout.inputResnets : layout.outputResnets
            guard level < resnets.count else { return nil }
            let list = down ? "input_blocks" : "output_blocks"
            switch parts[2] {
            case "resnets":
                guard j < resnets[level].count, let r = resnet(rest(4)) else { return nil }
                return "\(list).\(resnets[level][j]).0.\(r)"
            case "attentions":
                guard j < resnets[level].count else { return nil }
                return "\(list).\(resnets[level][j]).1.\(rest(4))"
            case "downsamplers" where down && j == 0 && parts.count >= 5 && parts[4] == "conv":
                guard let index = layout.inputDownsample[level] else { return nil }
                return "input_blocks.\(index).0.op.\(rest(5))"
            case "upsamplers" where !down && j == 0:
                guard level < resnets.count - 1, let last = resnets[level].last else { return nil }
                return "output_blocks.\(last).\(layout.upsamplerIndex[level]).\(rest(4))"
            default:
                return nil
            }
        case "mid_block":
            guard let j = Int(parts[2]) else { return nil }
            if parts[1] == "attentions", j == 0 { return "middle_block.1.\(rest(3))" }
            if parts[1] == "resnets", j < 2, let r = resnet(rest(3)) { return "middle_block.\(2 * j).\(r)" }
            return nil
        default:
            return nil
        }
    }

    /// A resnet's inner names: LDM's `in_layers` / `emb_layers` / `out_layers` sequentials.
    private static func resnet(_ rest: String) -> String? {
        for (ours, theirs) in [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
                               ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]
        where rest.hasPrefix(ours + ".") {
            return theirs + rest.dropFirst(ours.count)
        }
        return nil
    }

    // MARK: VAE (`first_stage_model.` + …, or a standalone VAE file's own keys)

    /// The LDM name of a VAE key; `levels` is the number of encoder / decoder levels.
    static func vae(_ key: String, levels: Int) -> String? {
        var parts = key.split(separator: ".").map(String.init)
        guard parts.count >= 2, parts[0] == "encoder" || parts[0] == "decoder" else {
            return key.hasPrefix("quant_conv.") || key.hasPrefix("post_quant_conv.") ? key : nil
        }
        let side = parts.removeFirst()
        func rest(_ from: Int) -> String { parts[from...].joined(separator: ".") }
        if parts[0] == "conv_norm_out" { return "\(side).norm_out.\(rest(1))" }
        if parts[0] == "conv_in" || parts[0] == "conv_out" { return "\(side).\(parts.joined(separator: "."))" }
        if parts[0] == "mid_block", parts.count >= 4, let k = Int(parts[2]) {
            if parts[1] == "resnets", k < 2 { return "\(side).mid.block_\(k + 1).\(vaeResnet(rest(3)))" }
            guard parts[1] == "attentions", k == 0 else { return nil }
            for (ours, theirs) in [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]
            where rest(3).hasPrefix(ours + ".") {
                return "\(side).mid.attn_1.\(theirs)" + rest(3).dropFirst(ours.count)
            }
            return nil
        }
        guard parts.count >= 4, let i = Int(parts[1]), let j = Int(parts[3]) else { return nil }
        switch (parts[0], parts[2]) {
        case ("down_blocks", "resnets") where side == "encoder":
            return "encoder.down.\(i).block.\(j).\(vaeResnet(rest(4)))"
        case ("down_blocks", "downsamplers") where side == "encoder" && j == 0:
            return "encoder.down.\(i).downsample.\(rest(4))"
        case ("up_blocks", "resnets") where side == "decoder" && i < levels:
            return "decoder.up.\(levels - 1 - i).block.\(j).\(vaeResnet(rest(4)))"
        case ("up_blocks", "upsamplers") where side == "decoder" && i < levels && j == 0:
            return "decoder.up.\(levels - 1 - i).upsample.\(rest(4))"
        default:
            return nil
        }
    }

    private static func vaeResnet(_ rest: String) -> String {
        rest.hasPrefix("conv_shortcut.") ? "nin_shortcut" + rest.dropFirst("conv_shortcut".count) : rest
    }

    /// VAE attention projections are 1×1 convolutions in LDM files ([C, C, 1, 1]) and linear layers here.
    static func isVAEAttentionProjection(_ ldmKey: String) -> Bool {
        ["q.weight", "k.weight", "v.weight", "proj_out.weight"].contains { ldmKey.hasSuffix("mid.attn_1." + $0) }
    }

    // MARK: Text encoders

    // SD-1.x: `cond_stage_model.transformer.` + transformers' CLIPTextModel keys (with `text_model.`), ours.

    /// Where an OpenCLIP (SD-2.x) weight comes from: a whole tensor, or rows of the fused q/k/v projection.
    enum OpenCLIPSource: Equatable {
        case tensor(String)
        /// Rows [part·C, (part + 1)·C) of `attn.in_proj_weight` / `in_proj_bias` (part 0 = q, 1 = k, 2 = v).
        case fused(String, part: Int)
    }

    /// SD-2.x: `cond_stage_model.model.` + OpenCLIP's text tower names (after the v2 text encoder conversion).
    static func openCLIP(_ key: String) -> OpenCLIPSource? {
        switch key {
        case "embeddings.token_embedding.weight": return .tensor("token_embedding.weight")
        case "embeddings.position_embedding.weight": return .tensor("positional_embedding")
        default: break
        }
        if key.hasPrefix("final_layer_norm.") { return .tensor("ln_final." + key.dropFirst("final_layer_norm.".count)) }
        let parts = key.split(separator: ".").map(String.init)
        guard parts.count >= 5, parts[0] == "encoder", parts[1] == "layers", let n = Int(parts[2]) else { return nil }
        let block = "transformer.resblocks.\(n)."
        let leaf = parts.last!
        switch (parts[3], parts[4]) {
        case ("layer_norm1", _): return .tensor(block + "ln_1." + leaf)
        case ("layer_norm2", _): return .tensor(block + "ln_2." + leaf)
        case ("self_attn", "out_proj"): return .tensor(block + "attn.out_proj." + leaf)
        case ("self_attn", "q_proj"): return .fused(block + "attn.in_proj_" + leaf, part: 0)
        case ("self_attn", "k_proj"): return .fused(block + "attn.in_proj_" + leaf, part: 1)
        case ("self_attn", "v_proj"): return .fused(block + "attn.in_proj_" + leaf, part: 2)
        case ("mlp", "fc1"): return .tensor(block + "mlp.c_fc." + leaf)
        case ("mlp", "fc2"): return .tensor(block + "mlp.c_proj." + leaf)
        default: return nil
        }
    }
}
