"""LoHa and LoKr adapter files (LyCORIS / kohya keys) and goldens for the Swift Adapters parity tests.

Run from the repository root:
    /root/refenv/bin/python Tests/Reference/make_lycoris_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, peft 0.21.2). Run after make_lora_goldens.py (it reads a.kohya.safetensors)
and make_pipeline_goldens.py (tiny-sd). Each adapter is made by peft's LoHaConfig / LoKrConfig on a fresh copy of
the tiny SD-1-like UNet (Tests/DiffusionModelsTests/Fixtures/unet_sd1), every factor drawn from a seeded normal
distribution, and written the way LyCORIS / kohya files are: `lora_unet_<path with . → _>.<factor>` + `.alpha`.
Writes, under Tests/AdaptersTests/Fixtures/:

    loha.safetensors     LoHa r=4, alpha=8 on to_q, to_v, ff.net.0.proj, proj_in (1x1 conv), conv1 (3x3, factors
                         flattened to [r, in*9]), time_emb_proj
    loha_tucker.safetensors  LoHa r=2, alpha=2 with use_effective_conv2d (hada_t1/t2 on 3x3 convs) on conv2 and
                         the stride-2 downsampler, plus to_k
    lokr.safetensors     LoKr r=2, alpha=4 on to_q, to_out.0, conv1, time_emb_proj (w1 and w2 full on the
                         attention, w2 = w2_a·w2_b on the others); where both factors are full, LyCORIS scales
                         by 1, so lokr_w1 is written times peft's α/r
    lokr_tucker.safetensors  LoKr r=2, alpha=2 with use_effective_conv2d and decompose_both (lokr_w1_a/b,
                         lokr_t2) on conv2 and ff.net.2
    lycoris_goldens.safetensors
        delta.<adapter>.<module path>   peft's get_delta_weight (checkpoint layout) of the modules in down_blocks.0
                                        and mid_block (every layer type: linear, 1x1, 3x3, stride-2 3x3)
        unet_<adapter>                  the UNet with that adapter alone at 1.0 (peft forward), on the
                                        make_lora_goldens.py inputs (unet_sample, unet_context, t = 500)
        unet_mix                        base with 0.6·loha + 0.5·loha_tucker + 0.4·lokr + 0.3·lokr_tucker +
                                        0.7·LoRA a (a.kohya.safetensors) weight deltas added to the weights
    Under Tests/PipelineTests/Fixtures/:
    loha_tiny_sd.safetensors        LoHa r=4, alpha=4 on tiny-sd's UNet attention and ResNet convolutions
    loha_latents_goldens.safetensors  latents.euler_loha: StableDiffusionPipeline (Euler, 10 steps, guidance 7.5,
                                    the prompts and init_latents of make_pipeline_goldens.py) with that LoHa's
                                    weight delta at 0.8 fused into the UNet
"""
import os
import re
import sys

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from peft import LoHaConfig, LoKrConfig, inject_adapter_in_model
from peft.tuners.lycoris_utils import LycorisLayer
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
UNET = os.path.join(HERE, "..", "DiffusionModelsTests", "Fixtures", "unet_sd1")
OUT = os.path.join(HERE, "..", "AdaptersTests", "Fixtures")
PIPE_OUT = os.path.join(HERE, "..", "PipelineTests", "Fixtures")
TINY_SD = os.path.join(PIPE_OUT, "tiny-sd")
PROMPT = "a photo of sks dog in the snow"
NEGATIVE = "blurry, low quality"

ADAPTERS = {
    "loha": (LoHaConfig(r=4, alpha=8, target_modules=["to_q", "to_v", "ff.net.0.proj", "proj_in", "conv1",
                                                        "time_emb_proj"]), 0.6, 300),
    "loha_tucker": (LoHaConfig(r=2, alpha=2, use_effective_conv2d=True,
                               target_modules=["conv2", "downsamplers.0.conv", "to_k"]), 0.5, 301),
    "lokr": (LoKrConfig(r=2, alpha=4, target_modules=["to_q", "to_out.0", "conv1", "time_emb_proj"]), 0.4, 302),
    "lokr_tucker": (LoKrConfig(r=2, alpha=2, use_effective_conv2d=True, decompose_both=True,
                               target_modules=["conv2", "ff.net.2"]), 0.3, 303),
}
FACTORS = re.compile(r"^(.*)\.(hada_w1_a|hada_w1_b|hada_w2_a|hada_w2_b|hada_t1|hada_t2|lokr_w1|lokr_w1_a|lokr_w1_b|"
                     r"lokr_w2|lokr_w2_a|lokr_w2_b|lokr_t2)\.(\w+)$")


def fresh_unet(path=UNET, subfolder=None):
    return UNet2DConditionModel.from_pretrained(path, subfolder=subfolder, torch_dtype=torch.float32).eval()


def make_adapter(unet, name, config, seed, std):
    """Injects the adapter, draws every factor from a seeded normal, and returns (file tensors, deltas by path)."""
    inject_adapter_in_model(config, unet, adapter_name=name)
    g = torch.Generator().manual_seed(seed)
    tensors, alpha = {}, float(config.alpha)
    with torch.no_grad():
        for key, p in sorted(unet.named_parameters()):
            m = FACTORS.match(key)
            if not m:
                continue
            path, factor, _ = m.groups()
            p.copy_(std * torch.randn(p.shape, generator=g))
            base = "lora_unet_" + path.replace(".", "_")
            tensors[f"{base}.{factor}"] = p.detach().clone().contiguous()
            tensors[f"{base}.alpha"] = torch.tensor(alpha)
    # LyCORIS files (and every loader of them: A1111, ComfyUI, sd.cpp) scale a LoKr module whose factors are both
    # full by 1, not α/r: such a module carries peft's scale inside lokr_w1 so the file means peft's ΔW.
    for key in list(tensors):
        if key.endswith(".lokr_w1") and key.replace(".lokr_w1", ".lokr_w2") in tensors:
            tensors[key] = tensors[key] * (alpha / config.r)
    deltas = {}
    for path, module in unet.named_modules():
        if isinstance(module, LycorisLayer) and name in module.active_adapters:
            deltas[path] = module.get_delta_weight(name).detach().clone()
    return tensors, deltas


def run(unet, inputs):
    with torch.no_grad():
        return unet(inputs["unet_sample"], 500, encoder_hidden_states=inputs["unet_context"]).sample


def add_deltas(model, deltas, weight):
    params = dict(model.named_parameters())
    with torch.no_grad():
        for path, d in deltas.items():
            params[path + ".weight"] += weight * d.reshape(params[path + ".weight"].shape)


def lora_deltas(path):
    """ΔW = (α/r)·up·down of every module of a kohya LoRA file, keyed by the UNet module path."""
    sd = load_file(path)
    unet = fresh_unet()
    names = {p.replace(".", "_"): p for p, _ in unet.named_modules()}
    out = {}
    for key, down in sd.items():
        if not key.startswith("lora_unet_") or not key.endswith(".lora_down.weight"):
            continue
        stem = key[: -len(".lora_down.weight")]
        up = sd[stem + ".lora_up.weight"]
        alpha = sd[stem + ".alpha"].item()
        r = down.shape[0]
        delta = (up.reshape(up.shape[0], r) @ down.reshape(r, -1)) * (alpha / r)
        out[names[stem[len("lora_unet_"):]]] = delta
    return out


def pipeline_golden():
    """A LoHa for tiny-sd's UNet, and diffusers' Euler latents with its ΔW at 0.8 fused into the base."""
    from safetensors.torch import load_file as lf
    pipe = StableDiffusionPipeline.from_pretrained(TINY_SD, torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    donor = fresh_unet(TINY_SD, "unet")
    config = LoHaConfig(r=4, alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"])
    tensors, deltas = make_adapter(donor, "style", config, 400, 0.25)
    save_file(tensors, os.path.join(PIPE_OUT, "loha_tiny_sd.safetensors"), metadata={"ss_network_module": "lycoris.kohya"})
    init = lf(os.path.join(PIPE_OUT, "latents_goldens.safetensors"))["init_latents"]
    base = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=10, guidance_scale=7.5, height=32, width=32,
                latents=init.clone(), output_type="latent").images
    add_deltas(pipe.unet, deltas, 0.8)
    out = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=10, guidance_scale=7.5, height=32, width=32,
               latents=init.clone(), output_type="latent").images
    change = (out - base).abs().max().item()
    print(f"  latents.euler_loha max|Δ| vs base {change:.4f}")
    if change < 1e-2:
        sys.exit("the LoHa barely changes the latents")
    save_file({"latents.euler_loha": out.contiguous()}, os.path.join(PIPE_OUT, "loha_latents_goldens.safetensors"))


def main():
    lora_goldens = load_file(os.path.join(OUT, "goldens.safetensors"))
    inputs = {k: lora_goldens[k] for k in ("unet_sample", "unet_context")}
    goldens, all_deltas = {}, {}
    for name, (config, weight, seed) in ADAPTERS.items():
        unet = fresh_unet()
        tensors, deltas = make_adapter(unet, name, config, seed, 0.3 if name.startswith("loha") else 0.2)
        save_file(tensors, os.path.join(OUT, f"{name}.safetensors"), metadata={"ss_network_module": "lycoris.kohya"})
        for path, d in deltas.items():
            if path.startswith("down_blocks.0.") or path.startswith("mid_block."):
                goldens[f"delta.{name}.{path}"] = d
        goldens["unet_" + name] = run(unet, inputs)
        all_deltas[name] = (deltas, weight)
        change = (goldens["unet_" + name] - lora_goldens["unet_base"]).abs().max().item()
        print(f"  {name:<12} {len(deltas)} modules, max|ΔW| {max(d.abs().max().item() for d in deltas.values()):.3f}, "
              f"max|Δ out| vs base {change:.4f}")
        if change < 1e-2:
            sys.exit(f"{name}: the adapter barely changes the output")

    mix = fresh_unet()
    for deltas, weight in all_deltas.values():
        add_deltas(mix, deltas, weight)
    add_deltas(mix, lora_deltas(os.path.join(OUT, "a.kohya.safetensors")), 0.7)
    goldens["unet_mix"] = run(mix, inputs)
    save_file({k: v.contiguous().float() for k, v in goldens.items()}, os.path.join(OUT, "lycoris_goldens.safetensors"))
    pipeline_golden()
    size = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT) if "lo" in f)
    print(f"Fixtures: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
