"""Golden outputs of diffusers' StableDiffusionImg2ImgPipeline on the tiny random-weight models that
make_pipeline_goldens.py writes (Tests/PipelineTests/Fixtures/tiny-sd and tiny-pixel); run that first.

Run from the repository root:
    /root/refenv/bin/python Tests/Reference/make_img2img_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, transformers 5.23.0). Writes, under Tests/PipelineTests/Fixtures/:
    img2img_init.png             the init picture, 40x48 RGB (a seeded gradient with two discs)
    img2img_goldens.safetensors
        image.<name>             output_type="np" images [N, 32, 32, 3] in [0, 1] of tiny-sd, PROMPT / NEGATIVE,
                                 10 steps, guidance 7.5, generator=torch.Generator("cpu").manual_seed(SEED); the
                                 init picture resized to 32x32 by `pipe.image_processor.preprocess(image, 32, 32)`
                                 (Pillow Lanczos). Names: <sampler>_<strength·10>, e.g. ddim_5, euler_a_8,
                                 dpmpp2m_karras_8, pndm_6 (the folder's own scheduler), heun_5, ddpm_6,
                                 dpmpp2m_sde_8 (algorithm_type "sde-dpmsolver++"); euler_a_8_batch2
                                 with num_images_per_prompt=2.
        image.crop_euler_a_6     Euler a, strength 0.6, the picture fitted by `preprocess(…, resize_mode="crop")`
                                 (scaled to cover 32x32 keeping its aspect ratio, then centre-cropped)
        image.vpred_<sampler>_<strength·10>  the same with the scheduler's prediction_type "v_prediction"
        image.lora_<sampler>_<strength·10>   the same with the LoRA img2img_lora.safetensors active at 0.8
                                 (`set_adapters(["style"], [0.8])`)
        pixel.<name>             tiny-pixel (no VAE): the final sample [1, 3, 16, 16] (output_type="latent") from
                                 the init picture resized to 16x16; diffusers runs a pixel model's img2img with an
                                 identity "VAE" whose encode returns the image (scaling factor 1, no sampling).
    img2img_lora.safetensors     a LoRA for tiny-sd's UNet (r=4, lora_alpha=4 on to_q/to_k/to_v/to_out.0, seeded
                                 normal A and B), saved by diffusers' `save_lora_weights`
    img2img_goldens.json         the runs: sampler, Karras, strength, images per prompt.
"""
import json
import os
from types import SimpleNamespace

import numpy as np
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, HeunDiscreteScheduler, PNDMScheduler,
                       StableDiffusionImg2ImgPipeline)
from PIL import Image
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "PipelineTests", "Fixtures")
PROMPT = "a photo of sks dog in the snow"
NEGATIVE = "blurry, low quality"
SEED = 1234
STEPS = 10
GUIDANCE = 7.5


def init_picture():
    """40 wide, 48 high: a colour gradient with a red and a blue disc and seeded speckle."""
    h, w = 48, 40
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rgb = np.stack([x / w, y / h, 0.5 + 0.5 * np.sin((x + y) / 9)], -1) * 200 + 20
    rgb[(x - 14) ** 2 + (y - 16) ** 2 < 64] = [220, 40, 30]
    rgb[(x - 27) ** 2 + (y - 33) ** 2 < 50] = [30, 60, 210]
    rgb += np.random.default_rng(5).normal(0, 6, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).round().astype(np.uint8), "RGB")


def scheduler(config, name):
    table = {"euler": EulerDiscreteScheduler, "euler_a": EulerAncestralDiscreteScheduler, "ddim": DDIMScheduler,
             "dpmpp2m": DPMSolverMultistepScheduler, "heun": HeunDiscreteScheduler,
             "pndm": PNDMScheduler, "ddpm": DDPMScheduler}
    if name == "dpmpp2m_karras":
        return DPMSolverMultistepScheduler.from_config(config, use_karras_sigmas=True)
    if name == "dpmpp2m_sde":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="sde-dpmsolver++")
    return table[name].from_config(config)


class IdentityVAE(torch.nn.Module):
    """Stands in for the VAE of a pixel model: encode returns the image itself as `latents`."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(scaling_factor=1.0, block_out_channels=[1], latent_channels=3,
                                      force_upcast=False, shift_factor=None)

    device = torch.device("cpu")
    dtype = torch.float32

    def encode(self, x):
        return SimpleNamespace(latents=x)


def main():
    picture = init_picture()
    picture.save(os.path.join(ROOT, "img2img_init.png"))
    picture = Image.open(os.path.join(ROOT, "img2img_init.png")).convert("RGB")
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(os.path.join(ROOT, "tiny-sd"), torch_dtype=torch.float32,
                                                          safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    base = pipe.scheduler.config
    image = pipe.image_processor.preprocess(picture, height=32, width=32)
    goldens, runs = {}, {}
    for name, strength, count in [("ddim", 0.5, 1), ("ddim", 0.8, 1), ("euler_a", 0.5, 1), ("euler_a", 0.8, 1),
                                  ("dpmpp2m", 0.5, 1), ("dpmpp2m_karras", 0.8, 1), ("euler", 0.8, 1),
                                  ("pndm", 0.6, 1), ("heun", 0.5, 1), ("ddpm", 0.6, 1), ("dpmpp2m_sde", 0.8, 1),
                                  ("euler_a", 0.8, 2)]:
        pipe.scheduler = scheduler(base, name)
        key = f"{name}_{round(strength * 10)}" + ("_batch2" if count == 2 else "")
        out = pipe(PROMPT, image=image, strength=strength, negative_prompt=NEGATIVE, num_inference_steps=STEPS,
                   guidance_scale=GUIDANCE, num_images_per_prompt=count, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(SEED)).images
        goldens["image." + key] = torch.from_numpy(np.ascontiguousarray(out)).float()
        runs["image." + key] = {"sampler": name, "strength": strength, "num_images": count}
        print(f"image.{key}: mean {out.mean():.3f} std {out.std():.3f}")

    def run(key, sched, strength, **extra):
        pipe.scheduler = sched
        out = pipe(PROMPT, image=image, strength=strength, negative_prompt=NEGATIVE, num_inference_steps=STEPS,
                   guidance_scale=GUIDANCE, output_type="np", generator=torch.Generator("cpu").manual_seed(SEED)).images
        goldens["image." + key] = torch.from_numpy(np.ascontiguousarray(out)).float()
        runs["image." + key] = {"strength": strength, "num_images": 1, **extra}
        print(f"image.{key}: mean {out.mean():.3f} std {out.std():.3f}")

    image = pipe.image_processor.preprocess(picture, height=32, width=32, resize_mode="crop")
    run("crop_euler_a_6", scheduler(base, "euler_a"), 0.6, sampler="euler_a", resize_mode="crop")
    image = pipe.image_processor.preprocess(picture, height=32, width=32)

    for name, strength in [("ddim", 0.8), ("euler", 0.5)]:
        sched = scheduler(base, name)
        sched = type(sched).from_config(sched.config, prediction_type="v_prediction")
        run(f"vpred_{name}_{round(strength * 10)}", sched, strength, sampler=name, prediction_type="v_prediction")

    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]),
                          adapter_name="style")
    g = torch.Generator().manual_seed(77)
    with torch.no_grad():
        for key, p in sorted(pipe.unet.named_parameters()):
            if ".lora_A.style." in key:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif ".lora_B.style." in key:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    StableDiffusionImg2ImgPipeline.save_lora_weights(ROOT, unet_lora_layers=get_peft_model_state_dict(pipe.unet, adapter_name="style"),
                                                     weight_name="img2img_lora.safetensors")
    pipe.set_adapters(["style"], [0.8])
    for name, strength in [("euler_a", 0.6), ("dpmpp2m", 0.8)]:
        run(f"lora_{name}_{round(strength * 10)}", scheduler(base, name), strength, sampler=name, lora_weight=0.8)

    pixel_model = StableDiffusionImg2ImgPipeline.from_pretrained(os.path.join(ROOT, "tiny-pixel"), vae=None,
                                                                 torch_dtype=torch.float32, safety_checker=None,
                                                                 requires_safety_checker=False)
    pixel = StableDiffusionImg2ImgPipeline(vae=IdentityVAE(), text_encoder=pixel_model.text_encoder,
                                           tokenizer=pixel_model.tokenizer, unet=pixel_model.unet,
                                           scheduler=pixel_model.scheduler, safety_checker=None,
                                           feature_extractor=None, requires_safety_checker=False)
    pixel.set_progress_bar_config(disable=True)
    small = pipe.image_processor.preprocess(picture, height=16, width=16)
    for name, strength in [("euler", 0.6), ("euler_a", 0.8), ("ddim", 0.5)]:
        pixel.scheduler = scheduler(base, name)
        key = f"{name}_{round(strength * 10)}"
        out = pixel(PROMPT, image=small, strength=strength, negative_prompt=NEGATIVE, num_inference_steps=STEPS,
                    guidance_scale=GUIDANCE, output_type="latent",
                    generator=torch.Generator("cpu").manual_seed(SEED)).images
        goldens["pixel." + key] = out.contiguous()
        runs["pixel." + key] = {"sampler": name, "strength": strength, "num_images": 1}
        print(f"pixel.{key}: max|x| {out.abs().max().item():.3f} std {out.std().item():.3f}")

    save_file({k: v.contiguous() for k, v in goldens.items()}, os.path.join(ROOT, "img2img_goldens.safetensors"))
    with open(os.path.join(ROOT, "img2img_goldens.json"), "w") as f:
        json.dump({"prompt": PROMPT, "negative": NEGATIVE, "seed": SEED, "steps": STEPS, "guidance": GUIDANCE,
                   "runs": runs}, f, indent=2)


if __name__ == "__main__":
    main()
