"""SDXL LoRA files (diffusers/PEFT and kohya keys) for the tiny-sdxl fixture, and pipeline goldens with them.

Run from the repository root after make_sdxl_goldens.py:
    /root/refenv/bin/python Tests/Reference/make_sdxl_lora_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, transformers 5.23.0, peft 0.21.2). Writes, under Tests/PipelineTests/Fixtures/:
    sdxl-lora/a.diffusers.safetensors   StableDiffusionXLPipeline.save_lora_weights: `unet.…`, `text_encoder.…`,
                                        `text_encoder_2.…` lora_A/lora_B, with PEFT adapter metadata (alphas)
    sdxl-lora/a.kohya.safetensors       the same tensors as kohya keys: `lora_unet_<diffusers path, . → _>`,
                                        `lora_te1_text_model_…`, `lora_te2_text_model_…`, lora_down/lora_up/alpha,
                                        modelspec.trigger_phrase "sksa"
    sdxl-lora/b.diffusers.safetensors   a second adapter (UNet and text_encoder_2 only)
    sdxl_lora_goldens.safetensors
        latents.a                       final latents with adapter a at weight 1 (load_lora_weights), Euler,
                                        10 steps, CFG 5, the init_latents of sdxl_goldens.safetensors
        latents.a08_b05                 adapters a and b at once, set_adapters(["a", "b"], [0.8, 0.5])
"""
import os

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "PipelineTests", "Fixtures")
MODEL = os.path.join(FIXTURES, "tiny-sdxl")
OUT = os.path.join(FIXTURES, "sdxl-lora")
PROMPT = "a photo of sks dog in the snow"
NEGATIVE = "blurry, low quality"

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
ADAPTERS = {
    "a": dict(unet=LoraConfig(r=4, lora_alpha=8, target_modules=UNET_TARGETS),
              text_encoder=LoraConfig(r=2, lora_alpha=2, target_modules=TE_TARGETS),
              text_encoder_2=LoraConfig(r=4, lora_alpha=2, target_modules=TE_TARGETS)),
    "b": dict(unet=LoraConfig(r=2, lora_alpha=1, target_modules=["to_k", "to_v", "ff.net.2"]),
              text_encoder_2=LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "fc2"])),
}


def randomize_lora(model, name, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in sorted(model.named_parameters()):
            if f".lora_A.{name}." in key:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif f".lora_B.{name}." in key:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def kohya(state_dict, alphas):
    """diffusers keys → kohya keys (diffusers-style module names) with each component's alpha."""
    out = {}
    for key, value in state_dict.items():
        component, rest = key.split(".", 1)
        module, part = rest.rsplit(".lora_", 1)
        if component != "unet" and not module.startswith("text_model."):
            module = "text_model." + module
        prefix = {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}[component]
        name = prefix + module.replace(".", "_")
        out[f"{name}.{'lora_down' if part.startswith('A') else 'lora_up'}.weight"] = value.contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(alphas[component]))
    return out


def pipeline():
    pipe = StableDiffusionXLPipeline.from_pretrained(MODEL, torch_dtype=torch.float32)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main():
    os.makedirs(OUT, exist_ok=True)
    pipe = pipeline()
    components = {"unet": pipe.unet, "text_encoder": pipe.text_encoder, "text_encoder_2": pipe.text_encoder_2}
    for i, (name, configs) in enumerate(ADAPTERS.items()):
        layers, metadata = {}, {}
        for j, (component, config) in enumerate(configs.items()):
            model = components[component]
            model.add_adapter(config, adapter_name=name)
            randomize_lora(model, name, 500 + 10 * i + j)
            layers[f"{component}_lora_layers"] = get_peft_model_state_dict(model, adapter_name=name)
            metadata[f"{component}_lora_adapter_metadata"] = config.to_dict()
        weight_name = f"{name}.diffusers.safetensors"
        StableDiffusionXLPipeline.save_lora_weights(OUT, weight_name=weight_name, **layers, **metadata)
        if name == "a":
            alphas = {c: cfg.lora_alpha for c, cfg in configs.items()}
            save_file(kohya(load_file(os.path.join(OUT, weight_name)), alphas), os.path.join(OUT, "a.kohya.safetensors"),
                      metadata={"ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_network_alpha": "8",
                                "ss_base_model_version": "sdxl_base_v1-0", "modelspec.trigger_phrase": "sksa"})

    init = load_file(os.path.join(FIXTURES, "sdxl_goldens.safetensors"))["init_latents"]
    goldens = {}
    for key, names, weights in [("a", ["a"], [1.0]), ("a08_b05", ["a", "b"], [0.8, 0.5])]:
        pipe = pipeline()
        for n in names:
            pipe.load_lora_weights(OUT, weight_name=f"{n}.diffusers.safetensors", adapter_name=n)
        pipe.set_adapters(names, weights)
        out = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=10, guidance_scale=5.0, height=32, width=32,
                   latents=init.clone(), output_type="latent").images
        goldens["latents." + key] = out
        print(f"latents.{key}: max|x| {out.abs().max().item():.3f} std {out.std().item():.3f}")
    save_file(goldens, os.path.join(FIXTURES, "sdxl_lora_goldens.safetensors"))
    print({f: os.path.getsize(os.path.join(OUT, f)) for f in sorted(os.listdir(OUT))})


if __name__ == "__main__":
    main()
