#!/usr/bin/env python3
"""PyTorch side of `bench train`: one DreamBooth-LoRA step with diffusers + peft (CPU, float32).

    /root/refenv/bin/python bench/torch_train.py [--config sd15|sdxl|tiny] [--size 64] [--rank 4] [--repeat 1]
                                                 [--threads 2] [--checkpointing]

The UNet has diffusers' random initialisation (weights do not change the timing), frozen; rank-R LoRA on
to_q/to_k/to_v/to_out.0 as diffusers' train_dreambooth_lora.py adds it; MSE against a random target,
backward, clip_grad_norm_(1.0), AdamW step. Prints the median step time and the peak RSS of this process.
"""
import argparse
import resource
import time

import os
import sys

import torch
from diffusers import UNet2DConditionModel
from peft import LoraConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import UNETS as MODEL_UNETS  # noqa: E402

UNETS = {
    "sdxl": MODEL_UNETS["sdxl"],   # SDXL base; time ids of a square picture at the training size, random pooled embeds
    "sd15": dict(sample_size=64, cross_attention_dim=768),
    "tiny": dict(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=8,
                 cross_attention_dim=32, attention_head_dim=4),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="sd15")
    p.add_argument("--size", type=int)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpointing", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = UNETS[a.config]
    unet = UNet2DConditionModel(**cfg)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=a.rank, lora_alpha=a.rank, init_lora_weights="gaussian",
                                target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    if a.checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    params = [q for q in unet.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    size = a.size or cfg["sample_size"]
    x = torch.randn(1, unet.config.in_channels, size, size)
    ctx = torch.randn(1, 77, cfg["cross_attention_dim"])
    added = None
    if unet.config.addition_embed_type == "text_time":
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        added = {"text_embeds": torch.randn(1, pooled), "time_ids": torch.tensor([[size * 8.0, size * 8.0, 0.0, 0.0, size * 8.0, size * 8.0]])}
    target = torch.randn(1, unet.config.out_channels, size, size)
    t = torch.tensor([500])
    times, cpu = [], []
    for _ in range(a.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = unet(x, t, ctx, added_cond_kwargs=added).sample
        loss = torch.nn.functional.mse_loss(out, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    times.sort()
    trainable = sum(q.numel() for q in params)
    print(f"torch train {a.config} batch 1 {size}x{size}, rank-{a.rank} attention LoRA ({trainable} trainable)"
          + (", checkpointing" if a.checkpointing else ""))
    print(f"  step {times[len(times) // 2]:.3f} s (median of {len(times)}: {', '.join(f'{s:.3f}' for s in times)}), "
          f"CPU {sorted(cpu)[len(cpu) // 2]:.3f} s per step")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9:.2f} GB, {a.threads} threads")


if __name__ == "__main__":
    main()
