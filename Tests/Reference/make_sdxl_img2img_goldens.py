"""Golden outputs of diffusers' StableDiffusionXLImg2ImgPipeline on the tiny-sdxl fixture (SDXL image-to-image).

Run from the repository root after make_sdxl_goldens.py and make_img2img_goldens.py (it reads img2img_init.png):
    /root/refenv/bin/python Tests/Reference/make_sdxl_img2img_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, transformers 5.23.0). Writes Tests/PipelineTests/Fixtures/sdxl_img2img_goldens.safetensors:
    image.<sampler>_<strength·10>   output_type="np" images [1, 32, 32, 3] in [0, 1]: PROMPT / NEGATIVE, 10 steps,
                                    guidance 5, generator=torch.Generator("cpu").manual_seed(1234), the 40x48 init
                                    picture resized to 32x32 by `pipe.image_processor.preprocess(image, 32, 32)`;
                                    euler_a_6, dpmpp2m_8, euler_5
    image.sizes_euler_a_6           euler_a_6 with original_size (48, 64), crops_coords_top_left (8, 0),
                                    target_size (32, 32) (diffusers' (height, width) order)
The folder's model_index.json is StableDiffusionXLPipeline's; the image-to-image pipeline takes the same components
(requires_aesthetics_score False: the time ids are original size + crop + target size, as text-to-image).
"""
import os

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler
from diffusers import StableDiffusionXLImg2ImgPipeline
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "PipelineTests", "Fixtures")
PROMPT = "a photo of sks dog in the snow"
NEGATIVE = "blurry, low quality"
SCHEDULERS = {"euler_a": EulerAncestralDiscreteScheduler, "dpmpp2m": DPMSolverMultistepScheduler,
              "euler": EulerDiscreteScheduler}


def main():
    pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(os.path.join(ROOT, "tiny-sdxl"), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    assert not pipe.config.requires_aesthetics_score
    base = pipe.scheduler.config
    picture = Image.open(os.path.join(ROOT, "img2img_init.png")).convert("RGB")
    image = pipe.image_processor.preprocess(picture, height=32, width=32)
    goldens = {}
    for key, name, strength, extra in [("euler_a_6", "euler_a", 0.6, {}), ("dpmpp2m_8", "dpmpp2m", 0.8, {}),
                                       ("euler_5", "euler", 0.5, {}),
                                       ("sizes_euler_a_6", "euler_a", 0.6,
                                        dict(original_size=(48, 64), crops_coords_top_left=(8, 0), target_size=(32, 32)))]:
        pipe.scheduler = SCHEDULERS[name].from_config(base)
        out = pipe(PROMPT, image=image, strength=strength, negative_prompt=NEGATIVE, num_inference_steps=10,
                   guidance_scale=5.0, output_type="np", generator=torch.Generator("cpu").manual_seed(1234), **extra).images
        goldens["image." + key] = torch.from_numpy(np.ascontiguousarray(out)).float()
        print(f"image.{key}: mean {out.mean():.3f} std {out.std():.3f}")
    save_file(goldens, os.path.join(ROOT, "sdxl_img2img_goldens.safetensors"))


if __name__ == "__main__":
    main()
