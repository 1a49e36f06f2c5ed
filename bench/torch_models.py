#!/usr/bin/env python3
"""PyTorch side of `bench unet` / `bench vae`: the same shapes through diffusers (CPU, float32, no grad).

    /root/refenv/bin/python bench/torch_models.py unet --config sd15|sd21|sdxl --batch 2 [--repeat 3] [--threads 2]
    /root/refenv/bin/python bench/torch_models.py vae --config sd15 [--size 64] [--encode]
    ... --dtype bfloat16   weights and activations in BF16, as `torch_dtype=torch.bfloat16` loads a pipeline

Models use diffusers' own random initialisation (weights do not change the timing). Prints the median
time, GFLOP/s with the same analytic count as Sources/bench/ModelFLOPs.swift (given by `bench ... --count`),
and the peak RSS of this process.
"""
import argparse
import resource
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

UNETS = {
    "sd15": dict(sample_size=64, cross_attention_dim=768),
    "sd21": dict(sample_size=96, cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20],
                 use_linear_projection=True, upcast_attention=True),
    # stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
    "sdxl": dict(sample_size=128, block_out_channels=(320, 640, 1280),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 attention_head_dim=[5, 10, 20], cross_attention_dim=2048, transformer_layers_per_block=[1, 2, 10],
                 use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816),
    "tiny": dict(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=8,
                 cross_attention_dim=32, attention_head_dim=4),
}
VAES = {
    "sd15": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=512,
                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
    "tiny": dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                 down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
}


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with torch.no_grad():
            fn()
        times.append(time.perf_counter() - t0)
    return times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("suite", choices=["unet", "vae"])
    p.add_argument("--config", default="sd15")
    p.add_argument("--batch", type=int)
    p.add_argument("--size", type=int)
    p.add_argument("--tokens", type=int, default=77)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--encode", action="store_true")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--gflop", type=float, help="FLOP count from `bench ... --count`, for GFLOP/s")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dtype = getattr(torch, a.dtype)
    torch.set_default_dtype(dtype)
    if a.suite == "unet":
        model = UNet2DConditionModel(**UNETS[a.config]).eval()
        batch, size = a.batch or 2, a.size or model.config.sample_size
        x = torch.randn(batch, model.config.in_channels, size, size)
        ctx = torch.randn(batch, a.tokens, model.config.cross_attention_dim)
        t = torch.tensor(500)
        added = None
        if model.config.addition_embed_type == "text_time":
            pooled = model.config.projection_class_embeddings_input_dim - 6 * model.config.addition_time_embed_dim
            added = {"text_embeds": torch.randn(batch, pooled),
                     "time_ids": torch.tensor([[size * 8.0, size * 8.0, 0.0, 0.0, size * 8.0, size * 8.0]] * batch)}
        label = f"torch unet {a.config} batch {batch} {size}x{size} {a.dtype}"
        times = timed(lambda: model(x, t, encoder_hidden_states=ctx, added_cond_kwargs=added), a.repeat)
    else:
        model = AutoencoderKL(**VAES[a.config]).eval()
        batch, size = a.batch or 1, a.size or 64
        f = 2 ** (len(model.config.block_out_channels) - 1)
        if a.encode:
            x = torch.randn(batch, 3, size * f, size * f)
            label = f"torch vae {a.config} encode batch {batch} {size * f}x{size * f}"
            times = timed(lambda: model.encode(x), a.repeat)
        else:
            z = torch.randn(batch, model.config.latent_channels, size, size)
            label = f"torch vae {a.config} decode batch {batch} {size}x{size} {a.dtype}"
            times = timed(lambda: model.decode(z), a.repeat)
    med = sorted(times)[(len(times) - 1) // 2]
    print(label)
    print(f"  time {med:.3f} s (median of {len(times)}: {', '.join(f'{s:.3f}' for s in times)})")
    if a.gflop:
        print(f"  {a.gflop:.1f} GFLOP -> {a.gflop / med:.1f} GFLOP/s")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9:.2f} GB, {a.threads} threads")


if __name__ == "__main__":
    main()
