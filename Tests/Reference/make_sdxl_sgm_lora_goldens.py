"""An SDXL kohya LoRA with SGM module names (as sd-scripts' SDXL networks write them: `lora_unet_input_blocks_4_1_…`,
`lora_unet_middle_block_0_in_layers_2`, `lora_unet_output_blocks_2_2_conv`), LoCon included, for tiny-sdxl, and
diffusers' latents with it.

Run from the repository root after make_sdxl_goldens.py:
    /root/refenv/bin/python Tests/Reference/make_sdxl_sgm_lora_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, peft 0.21.2). Writes, under Tests/PipelineTests/Fixtures/:
    sdxl-lora/sgm.kohya.safetensors   LoRA rank 4, alpha 8 on every adaptable UNet layer: attention, proj_in/out,
                                      ff, the resnets' conv1/conv2/conv_shortcut/time_emb_proj, the down- and
                                      upsamplers' convolutions (LoCon: 3×3 lora_down, 1×1 lora_up); A ~ N(0, 1/fan_in),
                                      B ~ 0.3·N(0, 1) (seed 600); module names: the SGM/LDM checkpoint's (the table of
                                      make_ldm_lora_fixture.py for this config), `.` → `_`
    sdxl_sgm_lora_goldens.safetensors
        latents.sgm                   final latents with the file loaded by StableDiffusionXLPipeline.load_lora_weights
                                      (diffusers maps SGM blocks back itself), Euler, 10 steps, CFG 5, the init_latents
                                      of sdxl_goldens.safetensors
        latents.sgm05                 the same at set_adapters(["sgm"], [0.5])
Checked here: diffusers turns every module of the file into a LoRA layer (none left over, none missing) whose
A and B are the file's.
"""
import os
import sys

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ldm_lora_fixture import ldm_prefixes, to_ldm  # noqa: E402

FIXTURES = os.path.join(HERE, "..", "PipelineTests", "Fixtures")
MODEL = os.path.join(FIXTURES, "tiny-sdxl")
OUT = os.path.join(FIXTURES, "sdxl-lora")
PROMPT = "a photo of sks dog in the snow"
NEGATIVE = "blurry, low quality"
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2",
           "conv_shortcut", "time_emb_proj", "downsamplers.0.conv", "upsamplers.0.conv"]


def pipeline():
    pipe = StableDiffusionXLPipeline.from_pretrained(MODEL, torch_dtype=torch.float32)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main():
    pipe = pipeline()
    unet = pipe.unet
    unet.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS), adapter_name="sgm")
    g = torch.Generator().manual_seed(600)
    with torch.no_grad():
        for key, p in sorted(unet.named_parameters()):
            if ".lora_A.sgm." in key:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif ".lora_B.sgm." in key:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    table = ldm_prefixes(unet.config)
    out = {}
    for key, value in get_peft_model_state_dict(unet, adapter_name="sgm").items():
        module, part = key.rsplit(".lora_", 1)
        name = "lora_unet_" + to_ldm(module, table).replace(".", "_")
        out[f"{name}.{'lora_down' if part.startswith('A') else 'lora_up'}.weight"] = value.contiguous()
        out[f"{name}.alpha"] = torch.tensor(8.0)
    path = os.path.join(OUT, "sgm.kohya.safetensors")
    save_file(out, path, metadata={"ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_network_alpha": "8",
                                   "ss_base_model_version": "sdxl_base_v1-0", "ss_network_args": '{"conv_dim": "4", "conv_alpha": "8"}'})
    modules = {k.split(".")[0] for k in out}

    init = load_file(os.path.join(FIXTURES, "sdxl_goldens.safetensors"))["init_latents"]
    goldens = {}
    for key, weight in [("sgm", 1.0), ("sgm05", 0.5)]:
        pipe = pipeline()
        pipe.load_lora_weights(path, adapter_name="sgm")
        layers = {n: m for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and "sgm" in m.lora_A}
        assert len(layers) == len(modules), (len(layers), len(modules))
        for n, m in layers.items():
            name = "lora_unet_" + to_ldm(n, table).replace(".", "_")
            assert torch.equal(m.lora_A["sgm"].weight, out[name + ".lora_down.weight"]), n
            assert torch.equal(m.lora_B["sgm"].weight, out[name + ".lora_up.weight"]), n
        pipe.set_adapters(["sgm"], [weight])
        latents = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=10, guidance_scale=5.0, height=32, width=32,
                       latents=init.clone(), output_type="latent").images
        goldens["latents." + key] = latents
        print(f"latents.{key}: max|x| {latents.abs().max().item():.3f}; {len(layers)} LoRA layers from {len(modules)} modules")
    save_file(goldens, os.path.join(FIXTURES, "sdxl_sgm_lora_goldens.safetensors"))
    print(f"{len(out)} tensors, {os.path.getsize(path)} bytes; e.g. {sorted(modules)[:3]}")


if __name__ == "__main__":
    main()
