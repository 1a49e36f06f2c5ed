"""A tiny random-weight StableDiffusionXLPipeline in diffusers layout, and golden outputs.

Run from the repository root:
    /root/refenv/bin/python Tests/Reference/make_sdxl_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, transformers 5.23.0, safetensors 0.8.0). Writes, under
Tests/PipelineTests/Fixtures/:
    tiny-sdxl/               `StableDiffusionXLPipeline.save_pretrained` layout: text_encoder/ (CLIPTextModel,
                             2 layers, 16 wide, quick_gelu), text_encoder_2/ (CLIPTextModelWithProjection, 3 layers,
                             16 wide, gelu, projection 16), tokenizer/ (pads with <|endoftext|>), tokenizer_2/ (the
                             same vocabulary, pads with "!", as SDXL's second tokenizer), unet/ (DownBlock2D then
                             CrossAttnDownBlock2D, transformer_layers_per_block [1, 2], linear projections,
                             addition_embed_type "text_time"), vae/ (scaling_factor 0.13025), scheduler/ (Euler,
                             SDXL's settings). F16 on disk; goldens from the folder loaded back in float32.
    sdxl_goldens.safetensors
        te1.hidden.<k>, te2.hidden.<k>   hidden_states[k] of each text encoder for PROMPT (output_hidden_states)
        te1.last, te2.text_embeds        CLIPTextModel's last_hidden_state; the projected pooled output of encoder 2
        unet.sample, unet.context, unet.text_embeds, unet.time_ids, unet.out
                                         one UNet call (t = UNET_T) with added conditioning, NCHW
        init_latents                     [1, 4, 16, 16] injected initial noise
        latents.euler                    final latents, 10 steps Euler, guidance 5, PROMPT, NEGATIVE
        latents.euler_noneg              same, negative_prompt=None (zeros: force_zeros_for_empty_prompt)
        latents.euler_sizes              same as euler with original_size (64, 48), crops (4, 2), target (32, 40)
        image.euler                      output_type="np" [1, 32, 32, 3], generator=torch.Generator().manual_seed(SEED)
        image.euler_a_batch2             Euler a, num_images_per_prompt=2, negative_prompt=None
    sdxl_goldens.json                    prompt ids of both tokenizers and the settings of each run.
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                       StableDiffusionXLPipeline, UNet2DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_pipeline_goldens import randomize, write_tokenizer  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "PipelineTests", "Fixtures")
MODEL = os.path.join(ROOT, "tiny-sdxl")
PROMPT = "a photo of sks dog in the snow"
NEGATIVE = "blurry, low quality"
SEED = 1234
STEPS = 10
GUIDANCE = 5.0
SIZE = 32
UNET_T = 421.0


def text_config(tokenizer, layers, act):
    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, projection_dim=16,
                          num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=77,
                          hidden_act=act, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)


def build_pipeline(tokenizer, tokenizer_2):
    text_encoder = CLIPTextModel(text_config(tokenizer, 2, "quick_gelu")).eval()
    text_encoder_2 = CLIPTextModelWithProjection(text_config(tokenizer_2, 3, "gelu")).eval()
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2), norm_num_groups=8,
                                use_linear_projection=True, addition_embed_type="text_time",
                                addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 16).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=SIZE, scaling_factor=0.13025).eval()
    for i, m in enumerate((text_encoder, text_encoder_2, unet, vae)):
        randomize(m, 300 + i)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading",
                                       prediction_type="epsilon", interpolation_type="linear")
    return StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
                                     force_zeros_for_empty_prompt=True)


def ids(tokenizer, text):
    return tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


def main():
    shutil.rmtree(MODEL, ignore_errors=True)
    tokenizer = write_tokenizer(os.path.join(MODEL, "tokenizer"))
    vocab = os.path.join(MODEL, "tokenizer")
    tokenizer_2 = CLIPTokenizer(os.path.join(vocab, "vocab.json"), os.path.join(vocab, "merges.txt"), pad_token="!",
                                model_max_length=77)
    build_pipeline(tokenizer, tokenizer_2).to(torch.float16).save_pretrained(MODEL, safe_serialization=True)
    # transformers 5 saves a tokenizer as tokenizer.json only; keep the CLIP-format files too.
    for folder in ("tokenizer", "tokenizer_2"):
        for name in ("vocab.json", "merges.txt"):
            if folder != "tokenizer":
                shutil.copy(os.path.join(vocab, name), os.path.join(MODEL, folder, name))
        os.remove(os.path.join(MODEL, folder, "tokenizer.json"))
    pipe = StableDiffusionXLPipeline.from_pretrained(MODEL, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    g = {}

    with torch.no_grad():
        ids1, ids2 = ids(pipe.tokenizer, PROMPT), ids(pipe.tokenizer_2, PROMPT)
        o1 = pipe.text_encoder(ids1, output_hidden_states=True)
        o2 = pipe.text_encoder_2(ids2, output_hidden_states=True)
        for k, h in enumerate(o1.hidden_states):
            g[f"te1.hidden.{k}"] = h[0]
        for k, h in enumerate(o2.hidden_states):
            g[f"te2.hidden.{k}"] = h[0]
        g["te1.last"] = o1.last_hidden_state[0]
        g["te2.text_embeds"] = o2.text_embeds[0]

        gen = torch.Generator().manual_seed(11)
        sample = torch.randn(2, 4, 16, 16, generator=gen)
        context = torch.randn(2, 77, 32, generator=gen)
        text_embeds = torch.randn(2, 16, generator=gen)
        time_ids = torch.tensor([[32.0, 32.0, 0.0, 0.0, 32.0, 32.0], [1024.0, 768.0, 16.0, 8.0, 1024.0, 1024.0]])
        out = pipe.unet(sample, UNET_T, encoder_hidden_states=context,
                        added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
        g.update({"unet.sample": sample, "unet.context": context, "unet.text_embeds": text_embeds,
                  "unet.time_ids": time_ids, "unet.out": out})
        print(f"unet.out: max|x| {out.abs().max().item():.3f} std {out.std().item():.3f}")

    base = pipe.scheduler.config
    runs = {}
    init = torch.randn(1, 4, SIZE // 2, SIZE // 2, generator=torch.Generator().manual_seed(7))
    g["init_latents"] = init
    for key, negative, sizes in [("euler", NEGATIVE, {}), ("euler_noneg", None, {}),
                                 ("euler_sizes", NEGATIVE, {"original_size": (64, 48), "crops_coords_top_left": (4, 2),
                                                            "target_size": (32, 40)})]:
        pipe.scheduler = EulerDiscreteScheduler.from_config(base)
        out = pipe(PROMPT, negative_prompt=negative, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                   height=SIZE, width=SIZE, latents=init.clone(), output_type="latent", **sizes).images
        g["latents." + key] = out
        runs["latents." + key] = {"sampler": "euler", "negative": negative, **{k: list(v) for k, v in sizes.items()}}
        print(f"latents.{key}: max|x| {out.abs().max().item():.3f} std {out.std().item():.3f}")

    for key, scheduler_class, negative, count in [("euler", EulerDiscreteScheduler, NEGATIVE, 1),
                                                  ("euler_a_batch2", EulerAncestralDiscreteScheduler, None, 2)]:
        pipe.scheduler = scheduler_class.from_config(base)
        out = pipe(PROMPT, negative_prompt=negative, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                   height=SIZE, width=SIZE, num_images_per_prompt=count, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(SEED)).images
        g["image." + key] = torch.from_numpy(np.ascontiguousarray(out)).float()
        runs["image." + key] = {"sampler": scheduler_class.__name__, "negative": negative, "num_images": count}
        print(f"image.{key}: mean {out.mean():.3f} std {out.std():.3f}")

    save_file({k: v.contiguous() for k, v in g.items()}, os.path.join(ROOT, "sdxl_goldens.safetensors"))
    with open(os.path.join(ROOT, "sdxl_goldens.json"), "w") as f:
        json.dump({"prompt": PROMPT, "prompt_ids": ids1[0].tolist(), "prompt_ids_2": ids2[0].tolist(),
                   "negative": NEGATIVE, "seed": SEED, "steps": STEPS, "guidance": GUIDANCE, "unet_t": UNET_T,
                   "width": SIZE, "height": SIZE, "runs": runs}, f, indent=1)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(MODEL) for f in fs)
    print(f"tiny-sdxl: {total / 1e6:.2f} MB; goldens {os.path.getsize(os.path.join(ROOT, 'sdxl_goldens.safetensors')) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
