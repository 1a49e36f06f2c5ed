#!/usr/bin/env python3
"""PyTorch side of `bench train`: one DreamBooth-LoRA step with diffusers + peft (CPU, float32).

    /root/refenv/bin/python bench/torch_train.py [--config sd15|sdxl|tiny] [--size 64] [--rank 4] [--repeat 1]
                                                 [--threads 2] [--checkpointing] [--quantize nf4|fp4]

The UNet has diffusers' random initialisation (weights do not change the timing), frozen; rank-R LoRA on
to_q/to_k/to_v/to_out.0 as diffusers' train_dreambooth_lora.py adds it; MSE against a random target,
backward, clip_grad_norm_(1.0), AdamW step. Prints the median step time, its CPU time and the peak RSS of this
process.
With --quantize (bitsandbytes >= 0.48, `pip install --no-deps bitsandbytes`), QLoRA as diffusers'
BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32) sets a UNet up: every nn.Linear
becomes a bnb Linear4bit (blocks of 64; no double quantization, diffusers' default), quantized on the CPU,
and peft puts its bnb LoRA layers on top; convolutions stay F32. This is bitsandbytes' own CPU path
(dequantize_4bit, then an F32 matmul, forward and backward).
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


def quantize_linear_layers(module, quant_type):
    """Every nn.Linear below `module` replaced by a bnb Linear4bit holding its weight quantized (as diffusers'
    bitsandbytes quantizer converts them)."""
    import bitsandbytes as bnb
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Linear):
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=torch.float32, compress_statistics=False, quant_type=quant_type)
            q.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, compress_statistics=False,
                                         quant_type=quant_type)
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, name, q.to("cpu"))
        else:
            quantize_linear_layers(child, quant_type)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="sd15")
    p.add_argument("--size", type=int)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--quantize", choices=["nf4", "fp4"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = UNETS[a.config]
    unet = UNet2DConditionModel(**cfg)
    unet.requires_grad_(False)
    if a.quantize:
        quantize_linear_layers(unet, a.quantize)
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
    cpu.sort()
    trainable = sum(q.numel() for q in params)
    print(f"torch train {a.config} batch 1 {size}x{size}, rank-{a.rank} attention LoRA ({trainable} trainable)"
          + (", checkpointing" if a.checkpointing else "") + (f", {a.quantize} Linear layers" if a.quantize else ""))
    print(f"  step {times[len(times) // 2]:.3f} s (median of {len(times)}: {', '.join(f'{s:.3f}' for s in times)})")
    print(f"  CPU {cpu[len(cpu) // 2]:.3f} s per step (median; user + system of all threads)")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9:.2f} GB, {a.threads} threads")


if __name__ == "__main__":
    main()
