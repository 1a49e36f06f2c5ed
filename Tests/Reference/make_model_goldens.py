"""Tiny random-weight UNet2DConditionModel / AutoencoderKL fixtures and golden outputs.

Run from the repository root:
    /root/refenv/bin/python Tests/Reference/make_model_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, safetensors 0.8.0). Writes, under Tests/DiffusionModelsTests/Fixtures/:
    <name>/config.json, <name>/diffusion_pytorch_model.safetensors   (diffusers `save_pretrained` layout)
    <name>/golden.safetensors                                         (inputs and outputs, NCHW as diffusers gives)

Fixtures
    unet_sd1    SD-1-like: conv proj_in/out, attention_head_dim int (= number of heads), 3 levels,
                layers_per_block 2, CrossAttnDown/DownBlock2D, UpBlock2D/CrossAttnUpBlock2D.
    unet_sd2    SD-2-like: use_linear_projection, attention_head_dim list, upcast_attention,
                cross_attention_dim 24, odd token count.
    unet_pixel  pixel-space (in/out 3), flip_sin_to_cos false, freq_shift 1, only_cross_attention list,
                a 10x10 input (not a multiple of 4: exercises upsampling to the skip's size).
    vae_sd      AutoencoderKL, 2 levels, layers_per_block 2, scaling_factor 0.18215.

unet_sd1 and unet_pixel store their weights as F16 (the reference computes with the same F16-rounded values
in F32), the others as F32.
Every parameter is re-initialised from a seeded normal distribution (weights N(0, s) with
s = min(0.2, 1.5 / sqrt(fan_in)), biases N(0, 0.1), norm scales 1 + N(0, 0.1)) so every layer changes the output.
"""
import json
import math
import os
import sys

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "DiffusionModelsTests", "Fixtures")


def randomize(model: torch.nn.Module, seed: int, half: bool = False) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            leaf = name.split(".")[-1]
            is_norm = any(s in name for s in ("norm", "group_norm")) and p.dim() == 1
            if is_norm and leaf == "weight":
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif leaf == "bias" or p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                s = min(0.2, 1.5 / math.sqrt(fan_in))
                p.copy_(s * torch.randn(p.shape, generator=g))
            if half:
                p.copy_(p.half().float())


def check(name: str, t: torch.Tensor) -> None:
    if not torch.isfinite(t).all():
        sys.exit(f"{name}: non-finite values")
    std = t.std().item()
    if not (1e-2 < std < 1e3):
        sys.exit(f"{name}: degenerate output, std {std}")
    print(f"  {name:<16} shape {tuple(t.shape)} std {std:.4f} max|x| {t.abs().max().item():.4f}")


def save(folder: str, model, tensors: dict, half: bool) -> None:
    path = os.path.join(ROOT, folder)
    (model.half() if half else model).save_pretrained(path, safe_serialization=True)
    save_file({k: v.contiguous().float() for k, v in tensors.items()}, os.path.join(path, "golden.safetensors"))
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    print(f"{folder}: {size / 1e6:.2f} MB")


def unet_fixture(folder: str, config: dict, seed: int, hw: int, tokens: int, half: bool = False) -> None:
    torch.manual_seed(seed)
    model = UNet2DConditionModel(**config).eval()
    randomize(model, seed, half)
    g = torch.Generator().manual_seed(seed + 1)
    c_in = config["in_channels"]
    ctx_dim = config["cross_attention_dim"]
    sample = torch.randn(1, c_in, hw, hw, generator=g)
    context = torch.randn(1, tokens, ctx_dim, generator=g)
    sample_cfg = torch.randn(2, c_in, hw, hw, generator=g)
    context_cfg = torch.randn(2, tokens, ctx_dim, generator=g)
    out = {"sample": sample, "context": context, "sample_cfg": sample_cfg, "context_cfg": context_cfg}
    with torch.no_grad():
        for t in (10, 999):
            y = model(sample, torch.tensor([t]), encoder_hidden_states=context).sample
            check(f"out_t{t}", y)
            out[f"out_t{t}"] = y
        y = model(sample_cfg, torch.tensor(500), encoder_hidden_states=context_cfg).sample
        check("out_cfg_t500", y)
        diff = (y[0] - y[1]).abs().max().item()
        if diff < 1e-2:
            sys.exit(f"{folder}: CFG halves barely differ ({diff})")
        out["out_cfg_t500"] = y
        if (out["out_t10"] - out["out_t999"]).abs().max().item() < 1e-2:
            sys.exit(f"{folder}: the timestep barely matters")
    out["timesteps"] = torch.tensor([10.0, 999.0, 500.0])
    save(folder, model, out, half)
    reloaded = UNet2DConditionModel.from_pretrained(os.path.join(ROOT, folder), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        y = reloaded(sample, torch.tensor([10]), encoder_hidden_states=context).sample
    if (y - out["out_t10"]).abs().max().item() > 1e-5 * out["out_t10"].abs().max().item():
        sys.exit(f"{folder}: the saved folder does not reproduce the golden")


def vae_fixture(folder: str, config: dict, seed: int, hw: int) -> None:
    torch.manual_seed(seed)
    model = AutoencoderKL(**config).eval()
    randomize(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    image = 0.5 * torch.randn(1, config["in_channels"], hw, hw, generator=g)
    f = 2 ** (len(config["block_out_channels"]) - 1)
    latent = torch.randn(1, config["latent_channels"], hw // f, hw // f, generator=g)
    noise = torch.randn(1, config["latent_channels"], hw // f, hw // f, generator=g)
    with torch.no_grad():
        posterior = model.encode(image).latent_dist
        decoded = model.decode(latent).sample
        sampled = posterior.mean + posterior.std * noise
    check("posterior_mean", posterior.mean)
    check("posterior_logvar", posterior.logvar)
    check("decoded", decoded)
    save(folder, model, {"image": image, "latent": latent, "noise": noise, "posterior_mean": posterior.mean,
                         "posterior_logvar": posterior.logvar, "posterior_sample": sampled, "decoded": decoded},
         half=False)


def main() -> None:
    os.makedirs(ROOT, exist_ok=True)
    unet_fixture("unet_sd1", dict(
        sample_size=16, in_channels=4, out_channels=4,
        block_out_channels=(16, 32, 32), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=4, cross_attention_dim=32, norm_num_groups=8,
    ), seed=1, hw=16, tokens=8, half=True)
    unet_fixture("unet_sd2", dict(
        sample_size=16, in_channels=4, out_channels=4,
        block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=[2, 4], use_linear_projection=True, upcast_attention=True,
        cross_attention_dim=24, norm_num_groups=8,
    ), seed=2, hw=16, tokens=7)
    unet_fixture("unet_pixel", dict(
        sample_size=10, in_channels=3, out_channels=3,
        block_out_channels=(16, 16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=2, only_cross_attention=[False, True, False], cross_attention_dim=16,
        norm_num_groups=8, flip_sin_to_cos=False, freq_shift=1,
    ), seed=3, hw=10, tokens=5, half=True)
    vae_fixture("vae_sd", dict(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=32,
        block_out_channels=(16, 32), layers_per_block=2,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        norm_num_groups=8, scaling_factor=0.18215,
    ), seed=4, hw=16)


if __name__ == "__main__":
    main()
