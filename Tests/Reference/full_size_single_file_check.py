"""By-hand check of single-file loading at real size (not part of the tests: 2–2.6 GB files, minutes).

Builds a random-weight SD-1.5 (or, with --sd 2, SD-2.1-768: OpenCLIP ViT-H text tower with its 24th block,
v-prediction, 64 channels per head) in F16, saves it as a diffusers folder and as one original-layout
.safetensors file (the mapping of make_single_file_fixtures.py), loads the file back with diffusers'
`from_single_file` and writes its 128×128 picture (Euler, 4 steps, CFG 7.5, seed 42, "a photo of a dog").

    /root/refenv/bin/python Tests/Reference/full_size_single_file_check.py --sd 1 --out /tmp/sd15
    .build/release/generate -m /tmp/sd15/sd-random.safetensors --steps 4 --width 128 --height 128 --seed 42 \\
        --rng torch --sampler euler --out /tmp/sd15/out "a photo of a dog"
    .build/release/bench load /tmp/sd15/sd-random.safetensors; .build/release/bench load /tmp/sd15/sd-folder
    /root/refenv/bin/python Tests/Reference/full_size_single_file_check.py --out /tmp/sd15 --compare /tmp/sd15/out/*.png

Measured (README "Real Stable Diffusion weights"): mean |Δ| 0.18 of 255 (SD-1.5) and 0.20 (SD-2.1), max 0.5.
"""
import argparse
import gzip
import json
import os
import shutil
import sys

import numpy as np
import torch
from diffusers import (AutoencoderKL, EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline,
                       UNet2DConditionModel)
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_clip_vocab_goldens as vocab  # noqa: E402
import make_single_file_fixtures as fixtures  # noqa: E402

RESOURCE = vocab.RESOURCE


def tokenizer(folder, pad):
    """The embedded vocabulary as vocab.json + merges.txt."""
    os.makedirs(folder, exist_ok=True)
    lines = gzip.open(RESOURCE).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:48894 + 1]]
    tokens = list(vocab.bytes_to_unicode().values())
    tokens = tokens + [t + "</w>" for t in tokens] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(tokens)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), pad_token=pad,
                         model_max_length=77)


def build(sd, tok):
    v2 = sd == 2
    width = 1024 if v2 else 768
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=width, intermediate_size=4 * width, num_hidden_layers=23 if v2 else 12,
        num_attention_heads=width // 64, max_position_embeddings=77, hidden_act="gelu" if v2 else "quick_gelu",
        projection_dim=512 if v2 else 768, eos_token_id=2, bos_token_id=0, pad_token_id=1)).eval()
    unet = UNet2DConditionModel(sample_size=96 if v2 else 64, cross_attention_dim=width,
                                attention_head_dim=[5, 10, 20, 20] if v2 else 8, use_linear_projection=v2,
                                upcast_attention=v2).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                        layers_per_block=2, latent_channels=4, sample_size=768 if v2 else 512).eval()
    for i, m in enumerate((text, unet, vae)):
        fixtures.randomize(m, 500 + 100 * v2 + i)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
                              prediction_type="v_prediction" if v2 else "epsilon")
    return StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def make(sd, out):
    os.makedirs(out, exist_ok=True)
    tok = tokenizer(os.path.join(out, "tokenizer"), "!" if sd == 2 else "<|endoftext|>")
    pipe = build(sd, tok)
    folder = os.path.join(out, "sd-folder")
    shutil.rmtree(folder, ignore_errors=True)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    pipe.to(torch.float32)
    shutil.rmtree(os.path.join(folder, "tokenizer"))
    shutil.copytree(os.path.join(out, "tokenizer"), os.path.join(folder, "tokenizer"))
    state = fixtures.single_file(pipe, f"sd{sd}", 7)
    state = {k: (v.half() if v.dtype == torch.bfloat16 else v) for k, v in state.items()}   # an F16 file
    path = os.path.join(out, "sd-random.safetensors")
    save_file(state, path, metadata={"format": "pt"})
    del state
    loaded = StableDiffusionPipeline.from_single_file(path, config=folder, local_files_only=True,
                                                      torch_dtype=torch.float32, safety_checker=None)
    loaded.tokenizer = tok
    loaded.scheduler = EulerDiscreteScheduler.from_config(loaded.scheduler.config)
    loaded.set_progress_bar_config(disable=True)
    image = loaded("a photo of a dog", negative_prompt="", num_inference_steps=4, guidance_scale=7.5, height=128,
                   width=128, generator=torch.Generator("cpu").manual_seed(42), output_type="np").images
    save_file({"image": torch.from_numpy(image).contiguous()}, os.path.join(out, "diffusers_image.safetensors"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes), {folder}, diffusers_image.safetensors "
          f"({loaded.scheduler.config.prediction_type})")


def compare(out, png):
    from PIL import Image
    expected = load_file(os.path.join(out, "diffusers_image.safetensors"))["image"][0].numpy() * 255
    actual = np.asarray(Image.open(png)).astype(np.float64)
    d = np.abs(actual - expected)
    print(f"mean |diff| {d.mean():.3f} of 255, max {d.max():.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sd", type=int, choices=[1, 2], default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--compare")
    a = parser.parse_args()
    compare(a.out, a.compare) if a.compare else make(a.sd, a.out)
