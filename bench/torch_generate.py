#!/usr/bin/env python3
"""PyTorch side of `bench generate`: a whole text-to-image run through diffusers' StableDiffusionPipeline
(CPU, float32) with random weights, timed per phase like the Swift suite.

    /root/refenv/bin/python bench/torch_generate.py --config sd15 --steps 20 [--size 512] [--threads 2]
        [--sampler dpm++2m|lcm|unipc] [--cfg G] [--taesd] [--pipeline DIR]

`--sampler lcm --steps 4 --cfg 1 --taesd` is `generate --fast` (`bench generate` takes the same options): LCMScheduler,
no classifier-free guidance (diffusers skips the unconditional pass when guidance_scale <= 1), and a random-weight
AutoencoderTiny of madebyollin/taesd's shape (diffusers' default config) decoding instead of the VAE.
`--pipeline DIR` loads a diffusers model folder's own weights instead (e.g. the embedded pipelines/toy, whose UNet
works on pixels: no VAE, the pipeline's "latents" are the picture, so the decode is skipped).

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
from diffusers import (AutoencoderKL, AutoencoderTiny, DPMSolverMultistepScheduler, LCMScheduler, StableDiffusionPipeline,
                       UNet2DConditionModel, UniPCMultistepScheduler)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SCHEDULERS = {"dpm++2m": (DPMSolverMultistepScheduler, "DPM++ 2M"), "lcm": (LCMScheduler, "LCM"),
              "unipc": (UniPCMultistepScheduler, "UniPC")}
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
    p.add_argument("--sampler", default="dpm++2m", choices=sorted(SCHEDULERS))
    p.add_argument("--cfg", type=float, default=7.5, help="guidance scale (<= 1: no unconditional pass)")
    p.add_argument("--taesd", action="store_true", help="decode with a random-weight AutoencoderTiny")
    p.add_argument("--pipeline", help="a diffusers model folder to load instead of random weights")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16: the pipeline's weights and activations, as torch_dtype=torch.bfloat16 loads it")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    torch.set_default_dtype(getattr(torch, a.dtype))
    if a.pipeline:
        tokenizer = CLIPTokenizer.from_pretrained(os.path.join(a.pipeline, "tokenizer"))
        text_encoder = CLIPTextModel.from_pretrained(os.path.join(a.pipeline, "text_encoder"), torch_dtype=getattr(torch, a.dtype)).eval()
        unet = UNet2DConditionModel.from_pretrained(os.path.join(a.pipeline, "unet"), torch_dtype=getattr(torch, a.dtype)).eval()
        vae_dir = os.path.join(a.pipeline, "vae")
        vae = AutoencoderKL.from_pretrained(vae_dir, torch_dtype=getattr(torch, a.dtype)).eval() if os.path.isdir(vae_dir) else None
        scheduler_class, scheduler_name = SCHEDULERS[a.sampler]
        scheduler = scheduler_class.from_pretrained(os.path.join(a.pipeline, "scheduler"))
    else:
        unet_config, vae_config, text_config = CONFIGS[a.config]
        tokenizer = CLIPTokenizer.from_pretrained(os.path.join(ROOT, "Tests/CLIPTextTests/Fixtures/tokenizer"))
        text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), **text_config)).eval()
        unet = UNet2DConditionModel(**unet_config).eval()
        vae = AutoencoderKL(**vae_config).eval()
        scheduler_class, scheduler_name = SCHEDULERS[a.sampler]
        scheduler = scheduler_class(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    guided = a.cfg > 1
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompt = "a photo of an astronaut riding a horse on mars"
    factor = pipe.vae_scale_factor if vae is not None else 1
    size = a.size or unet.config.sample_size * factor
    taesd = AutoencoderTiny().eval() if a.taesd else None

    t0 = time.perf_counter()
    with torch.no_grad():
        pipe.encode_prompt(prompt, "cpu", 1, guided, "" if guided else None)
    text = time.perf_counter() - t0

    ends = []
    cpu_start = time.process_time()
    start = time.perf_counter()

    def on_step(_pipe, _i, _t, kwargs):
        ends.append(time.perf_counter() - start)
        return kwargs

    # Without a VAE the pipeline's latent size is height // vae_scale_factor: ask for the factor's multiple.
    latents = pipe(prompt, num_inference_steps=a.steps, guidance_scale=a.cfg, height=size * pipe.vae_scale_factor // factor,
                   width=size * pipe.vae_scale_factor // factor,
                   output_type="latent", generator=torch.Generator("cpu").manual_seed(0),
                   callback_on_step_end=on_step).images
    denoise = time.perf_counter() - start
    t0 = time.perf_counter()
    with torch.no_grad():
        if vae is None:
            pass
        elif taesd is not None:
            taesd.decode(latents / taesd.config.scaling_factor)
        else:
            pipe.vae.decode(latents / pipe.vae.config.scaling_factor)
    decode = time.perf_counter() - t0
    cpu = time.process_time() - cpu_start
    steps = sorted(e - s for e, s in zip(ends, [0.0] + ends))
    print(f"torch generate {os.path.basename(os.path.normpath(a.pipeline)) if a.pipeline else a.config} {size}x{size} {a.dtype}, {scheduler_name}, {a.steps} steps, "
          + (f"CFG {a.cfg} (UNet batch 2)" if guided else "no guidance (UNet batch 1)")
          + (", TAESD decode" if taesd is not None else ""))
    print(f"  text encoder {text:.3f} s (x{2 if guided else 1} prompts)")
    print(f"  per step {steps[(len(steps) - 1) // 2]:.3f} s median (min {steps[0]:.3f}, max {steps[-1]:.3f})")
    print(f"  denoise {denoise:.1f} s (includes text encoding), VAE decode {decode:.1f} s, "
          f"total {denoise + decode:.1f} s (CPU time {cpu:.1f} s)")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9:.2f} GB, {a.threads} threads")


if __name__ == "__main__":
    main()
