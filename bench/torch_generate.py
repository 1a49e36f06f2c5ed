#!/usr/bin/env python3
"""PyTorch side of `bench generate`: a whole text-to-image run through diffusers' StableDiffusionPipeline
(CPU, float32) with random weights, timed per phase like the Swift suite.

    /root/refenv/bin/python bench/torch_generate.py --config sd15 --steps 20 [--size 512] [--threads 2]

The tokenizer is the CLIP one of Tests/CLIPTextTests/Fixtures/tokenizer; the models use diffusers' and
transformers' own random initialisation (weights do not change the timing). Prints the text-encoder time,
the median time per step (UNet at batch 2 for classifier-free guidance), the VAE decode time, the total
and the peak RSS of this process.
"""
import argparse
import os
import resource
import time

import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONFIGS = {
    "sd15": (dict(sample_size=64, cross_attention_dim=768),
             dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=512,
                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
             dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)),
    "tiny": (dict(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=8,
                  cross_attention_dim=32, attention_head_dim=4),
             dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
             dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="sd15", choices=sorted(CONFIGS))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--size", type=int, help="image side in pixels (default: the UNet's sample_size x 8)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    unet_config, vae_config, text_config = CONFIGS[a.config]
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(ROOT, "Tests/CLIPTextTests/Fixtures/tokenizer"))
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), **text_config)).eval()
    unet = UNet2DConditionModel(**unet_config).eval()
    vae = AutoencoderKL(**vae_config).eval()
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                            steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompt = "a photo of an astronaut riding a horse on mars"
    size = a.size or unet.config.sample_size * pipe.vae_scale_factor

    t0 = time.perf_counter()
    with torch.no_grad():
        pipe.encode_prompt(prompt, "cpu", 1, True, "")
    text = time.perf_counter() - t0

    ends = []
    start = time.perf_counter()

    def on_step(_pipe, _i, _t, kwargs):
        ends.append(time.perf_counter() - start)
        return kwargs

    latents = pipe(prompt, num_inference_steps=a.steps, guidance_scale=7.5, height=size, width=size,
                   output_type="latent", generator=torch.Generator("cpu").manual_seed(0),
                   callback_on_step_end=on_step).images
    denoise = time.perf_counter() - start
    t0 = time.perf_counter()
    with torch.no_grad():
        pipe.vae.decode(latents / pipe.vae.config.scaling_factor)
    decode = time.perf_counter() - t0
    steps = sorted(e - s for e, s in zip(ends, [0.0] + ends))
    print(f"torch generate {a.config} {size}x{size}, DPM++ 2M, {a.steps} steps, CFG (UNet batch 2)")
    print(f"  text encoder {text:.3f} s (x2 prompts)")
    print(f"  per step {steps[(len(steps) - 1) // 2]:.3f} s median (min {steps[0]:.3f}, max {steps[-1]:.3f})")
    print(f"  denoise {denoise:.1f} s (includes text encoding), VAE decode {decode:.1f} s, total {denoise + decode:.1f} s")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9:.2f} GB, {a.threads} threads")


if __name__ == "__main__":
    main()
