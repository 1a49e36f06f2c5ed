"""A tiny random-weight StableDiffusionPipeline in diffusers layout, and golden pipeline outputs.

Run from the repository root:
    /root/refenv/bin/python Tests/Reference/make_pipeline_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, transformers 5.23.0, safetensors 0.8.0). Writes, under
Tests/PipelineTests/Fixtures/:
    tiny-sd/                 `StableDiffusionPipeline.save_pretrained` layout: model_index.json, scheduler/,
                             text_encoder/ (CLIP, 2 layers, 32 wide), tokenizer/ (a small CLIP-format BPE
                             vocabulary learned here: all 512 byte symbols, merges from a caption corpus),
                             unet/ (2 levels, 32/64 channels, cross-attention 32), vae/ (2 levels, factor 2).
                             Weights are F16 on disk; the goldens are computed from the saved folder
                             loaded back with torch_dtype=float32.
    latents_goldens.safetensors
        init_latents                 [1, 4, 16, 16] injected initial noise (N(0, 1), before init_noise_sigma)
        latents.<name>               final latents (output_type="latent", before the VAE), for
                                     name in euler, ddim, dpmpp2m_karras; 10 steps, guidance 7.5,
                                     prompt PROMPT, negative NEGATIVE
        latents.<name>.step2         the latents after the second step of each of these runs
        latents.euler_noneg          same as euler with an empty negative prompt (unconditional = encode(""))
        latents.euler_clipskip1      same as euler with clip_skip=1
        pixel.init, pixel.euler       tiny-pixel/ (a 3-channel UNet, no VAE): injected [1, 3, 16, 16] noise and the
                                     final sample, Euler, 10 steps, guidance 7.5
    tiny-pixel/                      a pixel-space pipeline: tiny-sd's text encoder, tokenizer and scheduler,
                                     a 3-channel UNet (16/32 channels), no VAE (model_index "vae": [null, null])
    image_goldens.safetensors
        image.<name>                 output_type="np" images [N, 32, 32, 3] in [0, 1] with
                                     generator=torch.Generator("cpu").manual_seed(SEED), 10 steps, guidance 7.5,
                                     for name in euler, euler_a, ddim, dpmpp2m; image.euler_a_batch2 with
                                     num_images_per_prompt=2.
    goldens.json                     prompts, seed, steps, sizes and the sampler of every golden.
"""
import collections
import json
import math
import os
import re
import shutil

import numpy as np
import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "PipelineTests", "Fixtures")
MODEL = os.path.join(ROOT, "tiny-sd")
PROMPT = "a photo of sks dog in the snow"
NEGATIVE = "blurry, low quality"
SEED = 1234
STEPS = 10
GUIDANCE = 7.5
SIZE = 32
CORPUS = """a photo of a dog in the snow. a photo of sks dog on the beach. a painting of a cat in a room.
a brown dog and a red ball on the grass. a small bird on a tree at night. a blue car near a house.
a flower in a garden. blurry, low quality, bad picture. a watercolor painting of a white cat."""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_tokenizer(folder, merges_count=120):
    """CLIP-format vocab.json/merges.txt: byte symbols (with and without </w>), BPE merges learned on CORPUS."""
    byte_symbols = list(bytes_to_unicode().values())
    vocab = byte_symbols + [s + "</w>" for s in byte_symbols]
    words = collections.Counter(re.findall(r"[a-z]+", CORPUS.lower()))
    split = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in words}
    merges = []
    for _ in range(merges_count):
        pairs = collections.Counter()
        for w, count in words.items():
            symbols = split[w]
            for a, b in zip(symbols, symbols[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        vocab.append(best[0] + best[1])
        for w in words:
            s, out, i = split[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            split[w] = tuple(out)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                         pad_token="<|endoftext|>", model_max_length=77)


def randomize(model, seed):
    """Seeded weights with a scale that makes every layer matter, rounded to F16."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            leaf = name.split(".")[-1]
            is_norm = ("norm" in name) and p.dim() == 1
            if is_norm and leaf == "weight":
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif leaf == "bias" or p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                s = min(0.2, 1.5 / math.sqrt(p[0].numel()))
                p.copy_(s * torch.randn(p.shape, generator=g))
            p.copy_(p.half().float())


def build_pipeline(tokenizer):
    text_config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, projection_dim=32,
                                 num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                                 hidden_act="quick_gelu", bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    text_encoder = CLIPTextModel(text_config).eval()
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=4, norm_num_groups=8).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32), layers_per_block=1,
                        latent_channels=4, norm_num_groups=8, sample_size=SIZE, scaling_factor=0.18215).eval()
    for i, m in enumerate((text_encoder, unet, vae)):
        randomize(m, 100 + i)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True,
                              steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def pixel_fixture(latents_goldens, runs):
    """tiny-pixel/: the same text encoder, tokenizer and scheduler, a 3-channel UNet and no VAE. diffusers
    runs it only with vae=None and output_type="latent" (its size check assumes a factor 8, so it is given
    128x128 and 16x16 injected noise)."""
    pipe = StableDiffusionPipeline.from_pretrained(MODEL, torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    unet = UNet2DConditionModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
                                block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=2, norm_num_groups=8).eval()
    randomize(unet, 200)
    pixel = StableDiffusionPipeline(vae=None, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=unet,
                                    scheduler=pipe.scheduler, safety_checker=None, feature_extractor=None,
                                    requires_safety_checker=False)
    pixel.set_progress_bar_config(disable=True)
    folder = os.path.join(ROOT, "tiny-pixel")
    shutil.rmtree(folder, ignore_errors=True)
    pixel.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    # transformers 5 saves the tokenizer as tokenizer.json only; keep the CLIP-format files too.
    shutil.copytree(os.path.join(MODEL, "tokenizer"), os.path.join(folder, "tokenizer"), dirs_exist_ok=True)
    pixel.to(torch.float32)
    pixel.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    init = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(8))
    out = pixel(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=GUIDANCE, height=128,
                width=128, latents=init.clone(), output_type="latent").images
    latents_goldens["pixel.init"] = init
    latents_goldens["pixel.euler"] = out
    runs["pixel.euler"] = {"sampler": "euler", "negative": NEGATIVE, "size": 16}
    print(f"pixel.euler: max|x| {out.abs().max().item():.3f} std {out.std().item():.3f}")


def scheduler(config, name):
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if name == "euler_a":
        return EulerAncestralDiscreteScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "dpmpp2m":
        return DPMSolverMultistepScheduler.from_config(config)
    if name == "dpmpp2m_karras":
        return DPMSolverMultistepScheduler.from_config(config, use_karras_sigmas=True)
    raise ValueError(name)


def encode(pipe, text, clip_skip):
    """diffusers' `encode_prompt` with clip_skip (its own path expects transformers 4's `text_model` attribute):
    the final layer norm applied to hidden_states[-(clip_skip + 1)]."""
    ids = pipe.tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        states = pipe.text_encoder(ids, output_hidden_states=True).hidden_states
        return pipe.text_encoder.final_layer_norm(states[-(clip_skip + 1)])


def main():
    shutil.rmtree(MODEL, ignore_errors=True)
    tokenizer = write_tokenizer(os.path.join(MODEL, "tokenizer"))
    print("tokens:", tokenizer(PROMPT).input_ids)
    # Save first, then compute every golden from the saved (F16) files, loaded back in F32: the scheduler
    # configs then come from scheduler_config.json exactly as the Swift side reads it.
    build_pipeline(tokenizer).to(torch.float16).save_pretrained(MODEL, safe_serialization=True)
    pipe = StableDiffusionPipeline.from_pretrained(MODEL, torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    base = pipe.scheduler.config
    latents_goldens, image_goldens, runs = {}, {}, {}
    init = torch.randn(1, 4, SIZE // 2, SIZE // 2, generator=torch.Generator().manual_seed(7))
    latents_goldens["init_latents"] = init
    for key, name, negative, clip_skip in [("euler", "euler", NEGATIVE, None), ("ddim", "ddim", NEGATIVE, None),
                                           ("dpmpp2m_karras", "dpmpp2m_karras", NEGATIVE, None),
                                           ("euler_noneg", "euler", "", None),
                                           ("euler_clipskip1", "euler", NEGATIVE, 1)]:
        pipe.scheduler = scheduler(base, name)
        embeds = {} if clip_skip is None else {"prompt_embeds": encode(pipe, PROMPT, clip_skip),
                                               "negative_prompt_embeds": encode(pipe, negative, clip_skip)}
        trajectory = []

        def record(_pipe, _i, _t, kwargs):
            trajectory.append(kwargs["latents"].clone())
            return kwargs

        out = pipe(None if embeds else PROMPT, negative_prompt=None if embeds else negative,
                   num_inference_steps=STEPS, guidance_scale=GUIDANCE, height=SIZE, width=SIZE,
                   latents=init.clone(), output_type="latent", callback_on_step_end=record, **embeds).images
        latents_goldens[f"latents.{key}.step2"] = trajectory[1]
        latents_goldens["latents." + key] = out
        runs["latents." + key] = {"sampler": name, "negative": negative, "clip_skip": clip_skip or 0}
        print(f"latents.{key}: max|x| {out.abs().max().item():.3f} std {out.std().item():.3f}")

    for key, name, count in [("euler", "euler", 1), ("euler_a", "euler_a", 1), ("ddim", "ddim", 1),
                             ("dpmpp2m", "dpmpp2m", 1), ("euler_a_batch2", "euler_a", 2)]:
        pipe.scheduler = scheduler(base, name)
        out = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                   height=SIZE, width=SIZE, num_images_per_prompt=count, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(SEED)).images
        image_goldens["image." + key] = torch.from_numpy(np.ascontiguousarray(out)).float()
        runs["image." + key] = {"sampler": name, "negative": NEGATIVE, "num_images": count}
        print(f"image.{key}: mean {out.mean():.3f} std {out.std():.3f}")

    pixel_fixture(latents_goldens, runs)
    save_file({k: v.contiguous() for k, v in latents_goldens.items()}, os.path.join(ROOT, "latents_goldens.safetensors"))
    save_file({k: v.contiguous() for k, v in image_goldens.items()}, os.path.join(ROOT, "image_goldens.safetensors"))
    with open(os.path.join(ROOT, "goldens.json"), "w") as f:
        json.dump({"prompt": PROMPT, "prompt_ids": tokenizer(PROMPT).input_ids, "negative": NEGATIVE, "seed": SEED, "steps": STEPS, "guidance": GUIDANCE,
                   "width": SIZE, "height": SIZE, "runs": runs}, f, indent=2)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"fixtures: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
