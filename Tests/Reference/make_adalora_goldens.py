"""AdaLoRA training goldens for the Swift Adapters tests.

Run from the repository root, after make_lora_goldens.py (it reuses its inputs):
    /root/refenv/bin/python Tests/Reference/make_adalora_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, peft 0.21.2). peft's AdaLoRA (`AdaLoraConfig`, its SVDLinear layers, its
`RankAllocator`) on the tiny SD-1-like UNet's attention projections: init_r=4, target_r=2, lora_alpha=8,
tinit=2, tfinal=2, deltaT=2, total_step=10, beta1=beta2=0.85, orth_reg_weight=0.5. Ten steps of
    loss = mean((unet(sample, 500, context) − target)²) + orth_reg_weight · mean over A and B of ‖PPᵀ − I‖_F
           (AdaLoraModel.forward's regularisation: A·Aᵀ for lora_A, Bᵀ·B for lora_B)
    loss.backward(); AdamW(lr 1e-2, weight decay 0.01).step(); update_and_allocate(step); zero_grad()
with `update_and_allocate` as AdaLoraModel's (importance EMAs and budget masking before total_step − tfinal,
the final mask at it, the saved rank pattern after it). Writes Tests/AdaptersTests/Fixtures/adalora_goldens.safetensors:
    target                        [2, 4, 16, 16] N(0, 1), seed 601
    init.<path>.lora_A/B/E        the initial triplets (peft's init: E = 0, A and B ~ N(0, 0.02) from torch's
                                  global generator seeded 600)
    loss                          [10] the loss of each step (regularisation included)
    final.<path>.lora_A/B/E       the triplets after the tenth step
    mask.<path>                   the final rank pattern (1 kept, 0 masked) [4]
"""
import os

import torch
from diffusers import UNet2DConditionModel
from peft import AdaLoraConfig, inject_adapter_in_model
from peft.tuners.adalora.layer import RankAllocator
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
UNET = os.path.join(HERE, "..", "DiffusionModelsTests", "Fixtures", "unet_sd1")
OUT = os.path.join(HERE, "..", "AdaptersTests", "Fixtures")
STEPS = 10
CONFIG = AdaLoraConfig(init_r=4, target_r=2, lora_alpha=8, tinit=2, tfinal=2, deltaT=2, total_step=STEPS, beta1=0.85,
                       beta2=0.85, orth_reg_weight=0.5, target_modules=["to_q", "to_k", "to_v", "to_out.0"])


def triplets(unet):
    out = {}
    for key, p in unet.named_parameters():
        for part in ("lora_A", "lora_B", "lora_E"):
            tag = f".{part}.default"
            if key.endswith(tag):
                out[f"{key[: -len(tag)]}.{part}"] = p
    return out


def orthogonal_regularization(unet):
    """AdaLoraModel.forward: the mean of ‖PPᵀ − I‖_F over every lora_A (P = A) and lora_B (Pᵀ·P)."""
    total, count = 0, 0
    for n, p in unet.named_parameters():
        if ("lora_A" in n or "lora_B" in n) and "default" in n:
            cov = p @ p.T if "lora_A" in n else p.T @ p
            total = total + torch.norm(cov - torch.eye(*cov.size()), p="fro")
            count += 1
    return total / count


def main():
    inputs = load_file(os.path.join(OUT, "goldens.safetensors"))
    torch.manual_seed(600)   # peft draws the AdaLoRA init from the global generator
    unet = UNet2DConditionModel.from_pretrained(UNET, torch_dtype=torch.float32).eval()
    inject_adapter_in_model(CONFIG, unet, adapter_name="default")
    for n, p in unet.named_parameters():
        p.requires_grad = "lora_" in n
    params = triplets(unet)
    goldens = {"init." + k: v.detach().clone() for k, v in params.items()}
    target = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(601))
    goldens["target"] = target
    allocator = RankAllocator(unet, CONFIG, "default")
    optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.01)
    losses, rank_pattern = [], None
    final = CONFIG.total_step - CONFIG.tfinal
    for step in range(STEPS):
        out = unet(inputs["unet_sample"], 500, encoder_hidden_states=inputs["unet_context"]).sample
        loss = ((out - target) ** 2).mean() + CONFIG.orth_reg_weight * orthogonal_regularization(unet)
        loss.backward()
        optimizer.step()
        # AdaLoraModel.update_and_allocate(step)
        if step < final:
            _, pattern = allocator.update_and_allocate(unet, step)
            rank_pattern = pattern or rank_pattern
        elif step == final:
            _, rank_pattern = allocator.update_and_allocate(unet, step, force_mask=True)
            allocator.reset_ipt()
        else:
            allocator.mask_using_rank_pattern(unet, rank_pattern)
        optimizer.zero_grad()
        losses.append(loss.item())
    goldens["loss"] = torch.tensor(losses)
    for k, v in params.items():
        goldens["final." + k] = v.detach().clone()
    for k, kept in rank_pattern.items():
        path = k.replace(".lora_E.default", "").replace(".lora_E", "")
        goldens["mask." + path] = torch.tensor([1.0 if x else 0.0 for x in kept])
    ranks = [int(sum(v)) for v in rank_pattern.values()]
    print(f"  losses {losses[0]:.4f} → {losses[-1]:.4f}; final ranks {sorted(ranks)} (budget {sum(ranks)})")
    save_file({k: v.contiguous().float() for k, v in goldens.items()}, os.path.join(OUT, "adalora_goldens.safetensors"))


if __name__ == "__main__":
    main()
