"""Golden pictures for an LCM-LoRA: a LoRA on the modules diffusers' LCM distillation scripts
(train_lcm_distill_lora_sd*.py) target — to_q/k/v, to_out.0, proj_in/out, ff.net.0.proj, ff.net.2, conv1, conv2,
conv_shortcut, downsamplers.0.conv, upsamplers.0.conv, time_emb_proj — on the committed tiny-sd fixture,
saved as people have such files and rendered with LCMScheduler as diffusers does.

Writes Tests/PipelineTests/Fixtures/lcm-lora/:
  lcm_lora_diffusers.safetensors   StableDiffusionPipeline.save_lora_weights (PEFT keys "unet.….lora_A.weight")
  lcm_lora_kohya.safetensors       the same weights in kohya keys ("lora_unet_….lora_down.weight" + ".alpha"),
                                   diffusers.utils.convert_state_dict_to_kohya, as the published LCM-LoRA files are
  goldens.safetensors              image.lcm4 / image.lcm6_cfg15 [1, 32, 32, 3] in [0, 1]: pipe.load_lora_weights(the
                                   diffusers file), LCMScheduler.from_config(pipe.scheduler.config), 4 steps
                                   guidance 1.0 / 6 steps guidance 1.5 with the negative prompt, 32x32,
                                   generator=torch.Generator("cpu").manual_seed(seed) (prompt, negative and seed of
                                   goldens.json); image.base4: the same 4 steps without the LoRA

Run from the repository root: /root/refenv/bin/python Tests/Reference/make_lcm_lora_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, peft 0.21.2).
"""
import json
import os

import numpy as np
import torch
from diffusers import LCMScheduler, StableDiffusionPipeline
from diffusers.utils import convert_state_dict_to_kohya
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "PipelineTests", "Fixtures")
OUT = os.path.join(FIXTURES, "lcm-lora")
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2",
           "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]


def main():
    os.makedirs(OUT, exist_ok=True)
    info = json.load(open(os.path.join(FIXTURES, "goldens.json")))
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(FIXTURES, "tiny-sd"), torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)

    def render(name, steps, guidance, negative):
        out = pipe(info["prompt"], negative_prompt=info["negative"] if negative else None, num_inference_steps=steps,
                   guidance_scale=guidance, height=32, width=32, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(info["seed"])).images
        print(f"image.{name}: mean {out.mean():.4f} std {out.std():.4f}")
        return torch.from_numpy(np.ascontiguousarray(out)).float()

    images = {"image.base4": render("base4", 4, 1.0, False)}

    # rank 4, alpha 4: a file in PEFT keys carries no alpha, so diffusers loads it at alpha = rank (scale 1);
    # B drawn non-zero so that the adapter changes the picture.
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=TARGETS, init_lora_weights="gaussian"))
    g = torch.Generator("cpu").manual_seed(21)
    with torch.no_grad():
        for name, p in pipe.unet.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    state = get_peft_model_state_dict(pipe.unet)
    pipe.unet.delete_adapters("default")
    diffusers_path = os.path.join(OUT, "lcm_lora_diffusers.safetensors")
    StableDiffusionPipeline.save_lora_weights(OUT, unet_lora_layers=state, weight_name="lcm_lora_diffusers.safetensors",
                                              safe_serialization=True)
    from safetensors.torch import load_file
    saved = load_file(diffusers_path)
    kohya = convert_state_dict_to_kohya({k: v for k, v in saved.items()})   # writes ".alpha" = rank per module
    assert all(float(v) == 4.0 for k, v in kohya.items() if k.endswith(".alpha"))
    save_file({k: v.contiguous() for k, v in kohya.items()}, os.path.join(OUT, "lcm_lora_kohya.safetensors"))
    print(len(saved), "diffusers keys,", len(kohya), "kohya keys")

    pipe.load_lora_weights(diffusers_path)
    images["image.lcm4"] = render("lcm4", 4, 1.0, False)
    images["image.lcm6_cfg15"] = render("lcm6_cfg15", 6, 1.5, True)
    path = os.path.join(OUT, "goldens.safetensors")
    save_file({k: v.contiguous() for k, v in images.items()}, path)
    for f in sorted(os.listdir(OUT)):
        print("wrote", os.path.join(OUT, f), os.path.getsize(os.path.join(OUT, f)), "bytes")


if __name__ == "__main__":
    main()
