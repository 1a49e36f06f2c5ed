"""Golden latents for `guidance_rescale` (diffusers' `rescale_noise_cfg`, Lin et al. 2024 §3.4) on the committed
tiny random-weight pipeline. Run from the repository root, after make_pipeline_goldens.py has written the fixture:
    /root/refenv/bin/python Tests/Reference/make_guidance_rescale_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, transformers 5.23.0). Writes Tests/PipelineTests/Fixtures/
guidance_rescale_goldens.safetensors:
    latents.euler.rescale<φ>     final latents (output_type="latent"), Euler, 10 steps, guidance 7.5,
                                 guidance_rescale φ for φ in 0.7 and 1.0, prompt and negative prompt as
                                 make_pipeline_goldens.py, from that file's init_latents
    pixel.euler.rescale0.7       tiny-pixel/ (no VAE), same settings, from pixel.init, run as
                                 make_pipeline_goldens.py runs it
"""
import os

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "PipelineTests", "Fixtures")
PROMPT = "a photo of sks dog in the snow"
NEGATIVE = "blurry, low quality"
STEPS = 10
GUIDANCE = 7.5


def run(folder, init, phi):
    if folder == "tiny-pixel":
        # as make_pipeline_goldens.py runs it: vae=None, the size check given 128 (it assumes a factor 8)
        sd = StableDiffusionPipeline.from_pretrained(os.path.join(ROOT, "tiny-sd"), torch_dtype=torch.float32,
                                                     safety_checker=None, requires_safety_checker=False)
        unet = UNet2DConditionModel.from_pretrained(os.path.join(ROOT, folder, "unet"), torch_dtype=torch.float32)
        pipe = StableDiffusionPipeline(vae=None, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=unet,
                                       scheduler=sd.scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        size = 128
    else:
        pipe = StableDiffusionPipeline.from_pretrained(os.path.join(ROOT, folder), torch_dtype=torch.float32,
                                                       safety_checker=None, requires_safety_checker=False)
        size = init.shape[-1] * pipe.vae_scale_factor
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    return pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                guidance_rescale=phi, height=size, width=size, latents=init.clone(), output_type="latent").images


def main():
    old = load_file(os.path.join(ROOT, "latents_goldens.safetensors"))
    out = {}
    for phi in (0.7, 1.0):
        out[f"latents.euler.rescale{phi}"] = run("tiny-sd", old["init_latents"], phi)
    out["latents.euler.rescale0.0"] = run("tiny-sd", old["init_latents"], 0.0)
    plain = (out["latents.euler.rescale0.0"] - old["latents.euler"]).abs().max().item()
    print(f"φ = 0 against the committed plain-guidance golden: max |Δ| {plain:.2e}")
    del out["latents.euler.rescale0.0"]
    if "pixel.init" in old:
        out["pixel.euler.rescale0.7"] = run("tiny-pixel", old["pixel.init"], 0.7)
    for k, v in out.items():
        print(f"{k}: {list(v.shape)} max|x| {v.abs().max().item():.3f}")
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(ROOT, "guidance_rescale_goldens.safetensors"))


if __name__ == "__main__":
    main()
