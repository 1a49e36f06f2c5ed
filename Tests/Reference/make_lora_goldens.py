"""LoRA adapter files and golden outputs for the Swift Adapters parity tests.

Run from the repository root:
    /root/refenv/bin/python Tests/Reference/make_lora_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, transformers 5.23.0, peft 0.21.2). Uses the tiny models made by
make_model_goldens.py (Tests/DiffusionModelsTests/Fixtures/unet_sd1) and make_clip_goldens.py
(Tests/CLIPTextTests/Fixtures/clip_sd1_quick_gelu). Writes, under Tests/AdaptersTests/Fixtures/:

    a.diffusers.safetensors  adapter "a": UNet r=4, lora_alpha=8 on attention, proj_in (1x1 conv), feed-forward,
                             ResNet conv1/conv2/conv_shortcut (3x3 and 1x1 LoRA-C), time_emb_proj and the
                             stride-2 downsampler conv; text encoder r=4, lora_alpha=2 on q/k/v/out_proj, fc1, fc2.
                             Saved by diffusers' `save_lora_weights` (PEFT keys + lora_adapter_metadata).
    b.diffusers.safetensors  adapter "b": UNet r=2, lora_alpha=1 on to_k, to_v, conv2; text encoder r=2 (alpha = r)
                             on q_proj, fc2.
                             (transformers 5 gives text-encoder keys without `text_model.`: text_encoder.encoder.…)
    a.kohya.safetensors,     the same adapters with kohya keys (lora_unet_/lora_te_text_model_ + "." → "_",
    b.kohya.safetensors      lora_down/lora_up, .alpha = lora_alpha; diffusers' own converter writes α = r).
    goldens.safetensors      unet_sample [2,4,16,16] (NCHW), unet_context [2,5,32], timestep 500:
                             unet_base, unet_a (a at 1.0), unet_ab (set_adapters [a, b], [0.7, 0.3]),
                             unet_fused (a, b fused at 0.7 / 0.3); te_input_ids [2,77] and the text encoder's
                             last_hidden_state for te_base, te_a, te_ab, te_fused.
All LoRA matrices, B included, are drawn from a seeded normal distribution so every adapter changes the output.
"""
import os
import sys

import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from diffusers.utils.peft_utils import set_weights_and_activate_adapters
from peft import LoraConfig
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel

HERE = os.path.dirname(os.path.abspath(__file__))
UNET = os.path.join(HERE, "..", "DiffusionModelsTests", "Fixtures", "unet_sd1")
CLIP = os.path.join(HERE, "..", "CLIPTextTests", "Fixtures", "clip_sd1_quick_gelu")
OUT = os.path.join(HERE, "..", "AdaptersTests", "Fixtures")

UNET_A = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "ff.net.0.proj", "ff.net.2",
          "conv1", "conv2", "conv_shortcut", "time_emb_proj", "downsamplers.0.conv"]
TE_ALL = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
ADAPTERS = {
    "a": dict(unet=LoraConfig(r=4, lora_alpha=8, target_modules=UNET_A),
              te=LoraConfig(r=4, lora_alpha=2, target_modules=TE_ALL)),
    "b": dict(unet=LoraConfig(r=2, lora_alpha=1, target_modules=["to_k", "to_v", "conv2"]),
              te=LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj", "fc2"])),
}


def models():
    unet = UNet2DConditionModel.from_pretrained(UNET, torch_dtype=torch.float32).eval()
    te = CLIPTextModel.from_pretrained(CLIP, torch_dtype=torch.float32).eval()
    return unet, te


def randomize_lora(model, name, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in sorted(model.named_parameters()):
            if f".lora_A.{name}." in key:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif f".lora_B.{name}." in key:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def add_adapters(unet, te):
    for i, (name, cfg) in enumerate(ADAPTERS.items()):
        unet.add_adapter(cfg["unet"], adapter_name=name)
        te.add_adapter(cfg["te"], adapter_name=name)
        randomize_lora(unet, name, 100 + i)
        randomize_lora(te, name, 200 + i)


def run(unet, te, inputs):
    with torch.no_grad():
        u = unet(inputs["unet_sample"], 500, encoder_hidden_states=inputs["unet_context"]).sample
        t = te(inputs["te_input_ids"].long()).last_hidden_state
    return u, t


def activate(unet, te, names, weights):
    set_weights_and_activate_adapters(unet, names, weights)
    set_weights_and_activate_adapters(te, names, weights)


def kohya(state_dict, alphas):
    """diffusers PEFT keys → kohya keys with the adapter's real alpha (diffusers' own converter writes α = r)."""
    out = {}
    for key, value in state_dict.items():
        component, rest = key.split(".", 1)
        module, part = rest.rsplit(".lora_", 1)
        if component == "text_encoder" and not module.startswith("text_model."):
            module = "text_model." + module   # real SD-1 checkpoints (and their adapters) keep `text_model.`
        prefix = {"unet": "lora_unet_", "text_encoder": "lora_te_"}[component]
        name = prefix + module.replace(".", "_")
        out[f"{name}.{'lora_down' if part.startswith('A') else 'lora_up'}.weight"] = value.contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(alphas[component]))
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    inputs = {
        "unet_sample": torch.randn(2, 4, 16, 16, generator=g),
        "unet_context": torch.randn(2, 5, 32, generator=g),
        "te_input_ids": torch.cat([torch.tensor([[998] + [5, 17, 301, 42] + [999] * 72]),
                                   torch.tensor([[998] + list(range(100, 130)) + [999] * 46])]).float(),
    }
    unet, te = models()
    base_u, base_t = run(unet, te, inputs)
    add_adapters(unet, te)
    goldens = dict(inputs, unet_base=base_u, te_base=base_t)

    for name, cfg in ADAPTERS.items():
        unet_sd = get_peft_model_state_dict(unet, adapter_name=name)
        te_sd = get_peft_model_state_dict(te, adapter_name=name)
        path = os.path.join(OUT, f"{name}.diffusers.safetensors")
        StableDiffusionPipeline.save_lora_weights(
            OUT, unet_lora_layers=unet_sd, text_encoder_lora_layers=te_sd, weight_name=f"{name}.diffusers.safetensors",
            unet_lora_adapter_metadata=cfg["unet"].to_dict(), text_encoder_lora_adapter_metadata=cfg["te"].to_dict())
        alphas = {"unet": cfg["unet"].lora_alpha, "text_encoder": cfg["te"].lora_alpha}
        save_file(kohya(load_file(path), alphas), os.path.join(OUT, f"{name}.kohya.safetensors"),
                  metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(cfg["unet"].r),
                            "ss_network_alpha": str(cfg["unet"].lora_alpha), "modelspec.trigger_phrase": f"sks{name}"})

    activate(unet, te, ["a"], [1.0])
    goldens["unet_a"], goldens["te_a"] = run(unet, te, inputs)
    activate(unet, te, ["a", "b"], [0.7, 0.3])
    goldens["unet_ab"], goldens["te_ab"] = run(unet, te, inputs)
    for model in (unet, te):
        for m in model.modules():
            if isinstance(m, LoraLayer):
                m.merge(adapter_names=["a", "b"])
    goldens["unet_fused"], goldens["te_fused"] = run(unet, te, inputs)
    for key in ("unet_a", "unet_ab", "te_a", "te_ab"):
        base = goldens["unet_base" if key.startswith("unet") else "te_base"]
        change = (goldens[key] - base).abs().max().item()
        print(f"  {key:<10} max|Δ| vs base {change:.4f}")
        if change < 1e-2:
            sys.exit(f"{key}: the adapter barely changes the output")

    save_file({k: v.contiguous().float() for k, v in goldens.items()}, os.path.join(OUT, "goldens.safetensors"))
    size = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"Fixtures: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
