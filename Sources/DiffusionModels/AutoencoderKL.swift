// Port of diffusers 0.42 `models/autoencoders/autoencoder_kl.py` `AutoencoderKL` and
// `models/autoencoders/vae.py` `DiagonalGaussianDistribution`. Property names are the checkpoint's keys,
// so `load(stateDict:)` takes `vae/diffusion_pytorch_model.safetensors` unchanged. All NHWC.
import Autograd
import Foundation
import NN
import TensorCore

/// The VAE posterior q(z | x): a diagonal Gaussian over latents [N, h, w, latentChannels].
public struct DiagonalGaussianDistribution {
    public let mean: Tensor
    /// log σ², clamped to [−30, 20] as diffusers does.
    public let logvar: Tensor

    /// moments [N, h, w, 2·L] → mean = channels 0..<L, logvar = channels L..<2L.
    init(moments: Tensor) throws {
        let latent = moments.shape[3] / 2
        let halves = try Layout.splitLastDim(moments, sizes: [latent, latent])
        mean = halves[0]
        var lv = halves[1]
        lv.withUnsafeMutableBufferPointer { p in
            for i in p.indices { p[i] = min(max(p[i], -30), 20) }
        }
        logvar = lv
    }

    /// σ = exp(logvar / 2).
    public var std: Tensor {
        var s = logvar
        s.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = exp(0.5 * p[i]) } }
        return s
    }

    /// mean + σ · noise, with `noise` drawn by the caller's seeded generator (same shape as `mean`).
    public func sample(noise: Tensor) throws -> Tensor {
        guard noise.shape == mean.shape else {
            throw TensorError.shapeMismatch("posterior sample: noise \(noise.shape) for mean \(mean.shape)")
        }
        let s = std
        return Tensor(shape: mean.shape) { out in
            mean.withUnsafeBufferPointer { m in
                s.withUnsafeBufferPointer { sd in
                    noise.withUnsafeBufferPointer { e in
                        for i in out.indices { out[i] = m[i] + sd[i] * e[i] }
                    }
                }
            }
        }
    }
}

extension DiagonalGaussianDistribution {
    /// mean + σ · ε with ε ~ N(0, 1) drawn from `random` in NHWC order.
    public func sample(using random: inout PhiloxRandom) throws -> Tensor {
        try sample(noise: random.normal(shape: mean.shape))
    }
}

/// KL-regularised autoencoder: image [N, H, W, 3] in [−1, 1] ↔ latents [N, H/f, W/f, L].
/// Latents for the UNet are `scalingFactor · (z − shiftFactor)`: `unetLatents(fromImage:)` and
/// `image(fromUNetLatents:)` are the one place that scales them in and out.
public final class AutoencoderKL: Module {
    public let config: AutoencoderKLConfig
    public let encoder: Encoder
    public let decoder: Decoder
    public let quant_conv: Conv2d?        // 1×1, 2L → 2L
    public let post_quant_conv: Conv2d?   // 1×1, L → L

    /// A model with zero weights; set them with `load(stateDict:)`.
    public init(config: AutoencoderKLConfig) {
        self.config = config
        encoder = Encoder(config: config)
        decoder = Decoder(config: config)
        let l = config.latentChannels
        quant_conv = config.useQuantConv ? Conv2d(inChannels: 2 * l, outChannels: 2 * l, kernelSize: 1, padding: 0) : nil
        post_quant_conv = config.usePostQuantConv ? Conv2d(inChannels: l, outChannels: l, kernelSize: 1, padding: 0) : nil
        super.init()
    }

    /// image [N, H, W, inChannels] → posterior over [N, H/f, W/f, latentChannels].
    public func encode(_ image: Variable) throws -> DiagonalGaussianDistribution {
        guard image.shape.count == 4, image.shape[3] == config.inChannels else {
            throw AutogradError.invalidInput("AutoencoderKL.encode: image must be NHWC [N, H, W, \(config.inChannels)], got \(image.shape)")
        }
        var moments = try encoder(image)
        if let quant_conv { moments = try quant_conv(moments) }
        return try DiagonalGaussianDistribution(moments: moments.value)
    }

    /// Image [N, H, W, inChannels] in [−1, 1] → the UNet's latents (posterior mean − shift_factor) · scaling_factor
    /// (deterministic; no gradient is recorded).
    public func unetLatents(fromImage image: Tensor) throws -> Tensor {
        var z = try withNoGrad { try encode(Variable(image)) }.mean
        let scale = config.scalingFactor, shift = config.shiftFactor ?? 0
        z.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = (p[i] - shift) * scale } }
        return z
    }

    /// Image [N, H, W, inChannels] in [−1, 1] → the UNet's latents sampled from the posterior:
    /// (mean + σ·noise − shift_factor) · scaling_factor, with `noise` N(0, 1) of the latent shape drawn by the
    /// caller's generator (diffusers img2img: `scaling_factor * retrieve_latents(vae.encode(image), generator)`).
    public func unetLatents(fromImage image: Tensor, noise: Tensor) throws -> Tensor {
        var z = try withNoGrad { try encode(Variable(image)) }.sample(noise: noise)
        let scale = config.scalingFactor, shift = config.shiftFactor ?? 0
        z.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = (p[i] - shift) * scale } }
        return z
    }

    /// The UNet's latents [N, h, w, latentChannels] → image [N, h·f, w·f, outChannels]:
    /// decode(z / scaling_factor + shift_factor) (no gradient is recorded).
    public func image(fromUNetLatents latents: Tensor) throws -> Tensor {
        let scale = config.scalingFactor, shift = config.shiftFactor ?? 0
        var z = latents
        z.withUnsafeMutableBufferPointer { p in for k in p.indices { p[k] = p[k] / scale + shift } }
        return try withNoGrad { try decode(Variable(z)) }.value
    }

    /// z [N, h, w, latentChannels] (unscaled) → image [N, h·f, w·f, outChannels].
    public func decode(_ z: Variable) throws -> Variable {
        guard z.shape.count == 4, z.shape[3] == config.latentChannels else {
            throw AutogradError.invalidInput("AutoencoderKL.decode: latents must be NHWC [N, h, w, \(config.latentChannels)], got \(z.shape)")
        }
        return try decoder(post_quant_conv.map { try $0(z) } ?? z)
    }
}
