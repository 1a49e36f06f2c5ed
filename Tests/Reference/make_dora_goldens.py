"""DoRA adapter files and goldens for the Swift Adapters parity tests.

Run from the repository root:
    /root/refenv/bin/python Tests/Reference/make_dora_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, peft 0.21.2). Run after make_lora_goldens.py (it reuses its inputs). peft's
`LoraConfig(use_dora=True)` on the tiny SD-1-like UNet (Tests/DiffusionModelsTests/Fixtures/unet_sd1): r=4,
lora_alpha=8 on to_q, to_v, to_out.0, proj_in (1x1 conv) and conv1 (3x3 conv); A, B and the magnitude (its
initial per-output-channel norm ‖W + s·B·A‖ times 1 + 0.2·N(0, 1)) drawn from a seeded generator.
Writes, under Tests/AdaptersTests/Fixtures/:

    dora.diffusers.safetensors  saved by diffusers' `save_lora_weights` (peft keys, `lora_magnitude_vector`)
    dora.kohya.safetensors      the same adapter with kohya / LyCORIS keys: lora_down / lora_up, `.alpha`, and
                                `dora_scale` [out, 1(, 1, 1)] (the magnitude on the output axis)
    dora_goldens.safetensors    unet_dora: the UNet with the adapter at 1.0 (peft forward), on the
                                make_lora_goldens.py inputs (unet_sample, unet_context, t = 500);
                                a training step's gradients: train_target [2,4,16,16] (N(0, 1), seed 501),
                                train_loss = mean((unet_dora − train_target)²), and for every adapted module
                                grad.<path>.lora_A / .lora_B / .magnitude (peft's, the norm detached)
"""
import os
import sys

import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
UNET = os.path.join(HERE, "..", "DiffusionModelsTests", "Fixtures", "unet_sd1")
OUT = os.path.join(HERE, "..", "AdaptersTests", "Fixtures")
CONFIG = LoraConfig(r=4, lora_alpha=8, use_dora=True, target_modules=["to_q", "to_v", "to_out.0", "proj_in", "conv1"])


def main():
    inputs = load_file(os.path.join(OUT, "goldens.safetensors"))
    unet = UNet2DConditionModel.from_pretrained(UNET, torch_dtype=torch.float32).eval()
    unet.add_adapter(CONFIG, adapter_name="dora")
    g = torch.Generator().manual_seed(500)
    with torch.no_grad():
        for key, p in sorted(unet.named_parameters()):
            if ".lora_A.dora." in key:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif ".lora_B.dora." in key:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        for key, p in sorted(unet.named_parameters()):
            if ".lora_magnitude_vector.dora" in key:
                p.mul_(1 + 0.2 * torch.randn(p.shape, generator=g))
    out = unet(inputs["unet_sample"], 500, encoder_hidden_states=inputs["unet_context"]).sample
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(501))
    loss = ((out - target) ** 2).mean()
    loss.backward()
    grads = {"train_target": target, "train_loss": loss.detach().reshape(1)}
    for key, p in unet.named_parameters():
        for part, name in [(".lora_A.dora.weight", "lora_A"), (".lora_B.dora.weight", "lora_B"),
                           (".lora_magnitude_vector.dora.weight", "magnitude")]:
            if key.endswith(part):
                grads[f"grad.{key[: -len(part)]}.{name}"] = p.grad.detach().clone()
    out = out.detach()
    print(f"  loss {loss.item():.5f}, {len(grads) - 2} gradients")
    change = (out - inputs["unet_base"]).abs().max().item()
    print(f"  unet_dora max|Δ| vs base {change:.4f}")
    if change < 1e-2:
        sys.exit("the adapter barely changes the output")
    sd = get_peft_model_state_dict(unet, adapter_name="dora")
    StableDiffusionPipeline.save_lora_weights(OUT, unet_lora_layers=sd, weight_name="dora.diffusers.safetensors",
                                              unet_lora_adapter_metadata=CONFIG.to_dict())
    saved = load_file(os.path.join(OUT, "dora.diffusers.safetensors"))
    print("  diffusers keys, e.g.", sorted(k for k in saved if "magnitude" in k)[:1])
    kohya = {}
    for key, value in saved.items():
        module = key[len("unet."):]
        for suffix, theirs in [(".lora_A.weight", "lora_down.weight"), (".lora_B.weight", "lora_up.weight"),
                               (".lora_magnitude_vector", "dora_scale"), (".lora_magnitude_vector.weight", "dora_scale")]:
            if module.endswith(suffix):
                path = module[: -len(suffix)]
                name = "lora_unet_" + path.replace(".", "_")
                if theirs == "dora_scale":
                    weight = dict(unet.named_parameters())[path + ".base_layer.weight"]
                    value = value.reshape(weight.shape[0], *[1] * (weight.dim() - 1))
                kohya[f"{name}.{theirs}"] = value.contiguous()
                kohya[f"{name}.alpha"] = torch.tensor(float(CONFIG.lora_alpha))
    save_file(kohya, os.path.join(OUT, "dora.kohya.safetensors"), metadata={"ss_network_module": "networks.lora"})
    save_file({"unet_dora": out.contiguous(), **{k: v.contiguous() for k, v in grads.items()}},
              os.path.join(OUT, "dora_goldens.safetensors"))


if __name__ == "__main__":
    main()
