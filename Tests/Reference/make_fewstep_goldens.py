"""Golden values for the few-step samplers `lcm` (LCMScheduler) and `unipc` (UniPCMultistepScheduler).

Two files:
  Tests/SchedulersTests/Fixtures/fewstep_scheduler_goldens.json
      the scheduler-level loop of make_scheduler_goldens.py (same fake model, same format, same seed) for
      LCM and UniPC cases: ε / v / sample prediction, original_inference_steps, timestep_scaling,
      leading / trailing / linspace spacing, Karras sigmas, lower_order_final.
  Tests/PipelineTests/Fixtures/fewstep_image_goldens.safetensors
      image.<name> [1, 32, 32, 3] in [0, 1]: StableDiffusionPipeline on the committed tiny-sd fixture
      (made by make_pipeline_goldens.py) with the scheduler built by `from_config(pipe.scheduler.config)`,
      generator=torch.Generator("cpu").manual_seed(1234), prompt and negative prompt of goldens.json:
        lcm4_cfg1        LCM, 4 steps, guidance 1.0 (no unconditional pass)
        lcm6_cfg15       LCM, 6 steps, guidance 1.5 with the negative prompt
        lcm4_cfg1_v      LCM, 4 steps, guidance 1.0, prediction_type v_prediction
        unipc8           UniPC, 8 steps, guidance 7.5 with the negative prompt
        unipc10_v        UniPC, 10 steps, guidance 7.5, prediction_type v_prediction
  Tests/PipelineTests/Fixtures/vae_tiling_goldens.safetensors
      decoded [1, 3, 128, 100]: tiny-sd's AutoencoderKL (sample_size 32, so 16-latent tiles with stride 12 and
      8-pixel blends) with `enable_tiling()`, decoding z = torch.randn([1, 4, 64, 50],
      generator=torch.Generator("cpu").manual_seed(5)) (4x the tile size high, a partial last column of tiles).
  Tests/PipelineTests/Fixtures/tiny-taesd/ and taesd_goldens.safetensors
      a random-weight AutoencoderTiny (TAESD layout: decoder 16/16 channels with 2 + 1 blocks, encoder 16/16 with
      1 + 2) saved in F16 with save_pretrained and loaded back in F32; decoded [1, 3, 32, 24] = vae.decode(z) for
      z = torch.randn([1, 4, 16, 12], generator=torch.Generator("cpu").manual_seed(9)) * 2;
      encoded [1, 4, 16, 12] = vae.encode(x).latents for x = image [1, 3, 32, 24] = torch.rand(…,
      generator=torch.Generator("cpu").manual_seed(11)) * 2 - 1;
      img2img.<name> [1, 32, 32, 3] in [0, 1]: StableDiffusionImg2ImgPipeline on tiny-sd with vae=the AutoencoderTiny
      (its encode gives the latents: no posterior draw from the generator), init picture img2img_init.png
      (make_img2img_goldens.py) by preprocess(…, 32, 32), seed 1234, the prompt / negative of that script:
        lcm4_5       LCM, 4 steps, strength 0.5, guidance 1.0
        euler_a8     Euler a, 10 steps, strength 0.8, guidance 7.5 with the negative prompt

Run from the repository root: /root/refenv/bin/python Tests/Reference/make_fewstep_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, transformers 5.23.0).
"""
import json
import os
import sys

import numpy as np
import torch
from diffusers import (AutoencoderKL, AutoencoderTiny, EulerAncestralDiscreteScheduler, LCMScheduler,
                       StableDiffusionImg2ImgPipeline, StableDiffusionPipeline, UniPCMultistepScheduler)
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_scheduler_goldens as sg  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCHED_OUT = os.path.join(HERE, "..", "SchedulersTests", "Fixtures", "fewstep_scheduler_goldens.json")
PIPE_DIR = os.path.join(HERE, "..", "PipelineTests", "Fixtures")

sg.CLASSES["lcm"] = (LCMScheduler, {})
sg.CLASSES["unipc"] = (UniPCMultistepScheduler, {})

SD1, SD2V = sg.SD1, sg.SD2V
# (name, sampler, config, karras, steps, eta)
CASES = [
    ("sd1-lcm-4", "lcm", SD1, False, 4, 0.0),
    ("sd1-lcm-6", "lcm", SD1, False, 6, 0.0),
    ("sd1-lcm-1", "lcm", SD1, False, 1, 0.0),
    ("v-trailing-lcm-4", "lcm", SD2V, False, 4, 0.0),
    ("sample-lcm-4", "lcm", dict(SD1, prediction_type="sample"), False, 4, 0.0),
    ("lcm-original-100-8", "lcm", dict(SD1, original_inference_steps=100), False, 8, 0.0),
    ("lcm-original-50-7", "lcm", SD1, False, 7, 0.0),
    ("lcm-timestep-scaling-1", "lcm", dict(SD1, timestep_scaling=1.0), False, 3, 0.0),
    ("defaults-lcm", "lcm", {}, False, 4, 0.0),
    ("sd1-unipc", "unipc", SD1, False, 10, 0.0),
    ("sd1-unipc-leading-8", "unipc", dict(SD1, timestep_spacing="leading"), False, 8, 0.0),
    ("v-trailing-unipc", "unipc", SD2V, False, 10, 0.0),
    ("sd1-unipc-karras", "unipc", SD1, True, 10, 0.0),
    ("sd1-unipc-20", "unipc", SD1, False, 20, 0.0),
    ("sd1-unipc-1", "unipc", SD1, False, 1, 0.0),
    ("sd1-unipc-2", "unipc", SD1, False, 2, 0.0),
    ("sample-unipc", "unipc", dict(SD1, prediction_type="sample"), False, 9, 0.0),
    ("unipc-no-lower-order-final-sigma-min", "unipc",
     dict(SD1, lower_order_final=False, final_sigmas_type="sigma_min"), False, 8, 0.0),
    ("defaults-unipc", "unipc", {}, False, 10, 0.0),
]

PIPE_CASES = [  # (name, scheduler class, steps, guidance, negative?, prediction)
    ("lcm4_cfg1", LCMScheduler, 4, 1.0, False, None),
    ("lcm6_cfg15", LCMScheduler, 6, 1.5, True, None),
    ("lcm4_cfg1_v", LCMScheduler, 4, 1.0, False, "v_prediction"),
    ("unipc8", UniPCMultistepScheduler, 8, 7.5, True, None),
    ("unipc10_v", UniPCMultistepScheduler, 10, 7.5, True, "v_prediction"),
]


def scheduler_goldens():
    cases = [sg.run(*c) for c in CASES]
    with open(SCHED_OUT, "w") as f:
        json.dump({"shape": sg.SHAPE, "base": sg.flat(sg.BASE), "cases": cases, "schedules": []}, f,
                  separators=(",", ":"))
    print("wrote", SCHED_OUT, os.path.getsize(SCHED_OUT), "bytes,", len(cases), "cases")


def pipeline_goldens():
    info = json.load(open(os.path.join(PIPE_DIR, "goldens.json")))
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(PIPE_DIR, "tiny-sd"), torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    base = pipe.scheduler.config
    images, runs = {}, {}
    for name, cls, steps, guidance, negative, prediction in PIPE_CASES:
        extra = {} if prediction is None else {"prediction_type": prediction}
        pipe.scheduler = cls.from_config(base, **extra)
        out = pipe(info["prompt"], negative_prompt=info["negative"] if negative else None, num_inference_steps=steps,
                   guidance_scale=guidance, height=32, width=32, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(info["seed"])).images
        images["image." + name] = torch.from_numpy(np.ascontiguousarray(out)).float()
        runs[name] = {"steps": steps, "guidance": guidance, "negative": negative, "prediction": prediction}
        print(f"image.{name}: mean {out.mean():.4f} std {out.std():.4f}")
    path = os.path.join(PIPE_DIR, "fewstep_image_goldens.safetensors")
    save_file({k: v.contiguous() for k, v in images.items()}, path, metadata={"runs": json.dumps(runs)})
    print("wrote", path, os.path.getsize(path), "bytes")


def vae_tiling_goldens():
    vae = AutoencoderKL.from_pretrained(os.path.join(PIPE_DIR, "tiny-sd", "vae"), torch_dtype=torch.float32)
    z = torch.randn([1, 4, 64, 50], generator=torch.Generator("cpu").manual_seed(5))
    with torch.no_grad():
        untiled = vae.decode(z).sample
        vae.enable_tiling()
        tiled = vae.decode(z).sample
    print(f"tiled vs untiled: max |diff| {(tiled - untiled).abs().max().item():.4f}")
    path = os.path.join(PIPE_DIR, "vae_tiling_goldens.safetensors")
    save_file({"decoded": tiled.contiguous()}, path)
    print("wrote", path, os.path.getsize(path), "bytes")


def taesd_goldens():
    torch.manual_seed(0)
    vae = AutoencoderTiny(encoder_block_out_channels=(16, 16), decoder_block_out_channels=(16, 16),
                          num_encoder_blocks=(1, 2), num_decoder_blocks=(2, 1))
    g = torch.Generator("cpu").manual_seed(3)
    with torch.no_grad():
        for name, p in vae.named_parameters():  # N(0, 1/fan-in) weights, small biases: activations stay O(1)
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) * (1.0 / fan_in) ** 0.5 * (1.0 if p.dim() > 1 else 0.1))
    folder = os.path.join(PIPE_DIR, "tiny-taesd")
    vae.to(torch.float16).save_pretrained(folder, safe_serialization=True)   # F16 on disk, F32 compute
    vae = AutoencoderTiny.from_pretrained(folder, torch_dtype=torch.float32)
    z = torch.randn([1, 4, 16, 12], generator=torch.Generator("cpu").manual_seed(9)) * 2
    with torch.no_grad():
        decoded = vae.decode(z).sample
    print(f"taesd decoded: mean {decoded.mean():.4f} std {decoded.std():.4f}")
    image = torch.rand([1, 3, 32, 24], generator=torch.Generator("cpu").manual_seed(11)) * 2 - 1
    with torch.no_grad():
        encoded = vae.encode(image).latents
    print(f"taesd encoded: mean {encoded.mean():.4f} std {encoded.std():.4f}")
    goldens = {"decoded": decoded.contiguous(), "image": image.contiguous(), "encoded": encoded.contiguous()}
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(os.path.join(PIPE_DIR, "tiny-sd"), vae=vae,
                                                          torch_dtype=torch.float32, safety_checker=None,
                                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    picture = Image.open(os.path.join(PIPE_DIR, "img2img_init.png")).convert("RGB")
    init = pipe.image_processor.preprocess(picture, height=32, width=32)
    for name, cls, steps, strength, guidance in [("lcm4_5", LCMScheduler, 4, 0.5, 1.0),
                                                 ("euler_a8", EulerAncestralDiscreteScheduler, 10, 0.8, 7.5)]:
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
        out = pipe("a photo of sks dog in the snow", image=init, strength=strength,
                   negative_prompt="blurry, low quality" if guidance > 1 else None, num_inference_steps=steps,
                   guidance_scale=guidance, output_type="np", generator=torch.Generator("cpu").manual_seed(1234)).images
        goldens["img2img." + name] = torch.from_numpy(np.ascontiguousarray(out)).float()
        print(f"taesd img2img {name}: mean {out.mean():.4f}")
    path = os.path.join(PIPE_DIR, "taesd_goldens.safetensors")
    save_file(goldens, path)
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    scheduler_goldens()
    pipeline_goldens()
    vae_tiling_goldens()
    taesd_goldens()
