"""SDXL DreamBooth-LoRA training goldens on the tiny-sdxl fixture (diffusers' train_dreambooth_lora_sdxl.py step).

Run from the repository root after make_sdxl_goldens.py:
    /root/refenv/bin/python Tests/Reference/make_sdxl_training_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, transformers 5.23.0, peft 0.21.2). Writes, under
Tests/PipelineTests/Fixtures/sdxl-training/:
    init.<case>.diffusers.safetensors   the LoRA the run starts from (StableDiffusionXLPipeline.save_lora_weights):
                                        rank 4, alpha 4, to_q/to_k/to_v/to_out.0 (peft "gaussian" A, then B set to
                                        0.1·N(0, 1) so that the first step moves A too); case "te" adds LoRA on both
                                        text encoders' q/k/v/out_proj and fc1/fc2 (train-style's text-encoder
                                        targets, as kohya's; diffusers' SDXL script adapts the attention only)
    goldens.safetensors
        x0                              [2, 4, 16, 16] clean latents (instance row, class row), N(0, 1) seed 7
        noise                           [STEPS, 2, 4, 16, 16] ε per step, seed 8
        timesteps                       [STEPS, 2] t per step (int → float), seed 9
        time_ids                        [2, 6] add_time_ids of the rows: the instance row is the centre crop of a
                                        48×40 picture trained at 32 (original 40×48, crop top-left (0, 3) after the
                                        resize to 38×32, target 32×32), the class row a 32×32 picture
        <case>.loss                     [STEPS] loss of each step: mse(instance) + 1.0 · mse(prior), before the update
        <case>.final.<component>/<module>.lora_A / .lora_B   the LoRA after STEPS AdamW updates
The step, as the script does it: prompt embeds from both encoders (penultimate states, pooled output of the second;
recomputed every step when the text encoders train), x_t = DDPMScheduler.add_noise, ε-prediction MSE per half,
backward, clip_grad_norm_(all LoRA parameters, 1.0), torch.optim.AdamW(lr 1e-2 for the UNet, 5e-3 for the text
encoders, betas (0.9, 0.999), weight decay 1e-2, eps 1e-8).
"""
import os

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionXLPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "PipelineTests", "Fixtures")
MODEL = os.path.join(FIXTURES, "tiny-sdxl")
OUT = os.path.join(FIXTURES, "sdxl-training")
PROMPTS = ["a photo of sks dog", "a photo of a dog"]
STEPS = 3
LR, TE_LR = 1e-2, 5e-3
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
TIME_IDS = [[40.0, 48.0, 0.0, 3.0, 32.0, 32.0], [32.0, 32.0, 0.0, 0.0, 32.0, 32.0]]


def add_lora(model, targets, seed):
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=targets))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in sorted(model.named_parameters()):
            if ".lora_A." in key:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[0] ** 0.5)   # peft's gaussian: std 1/r
            elif ".lora_B." in key:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def lora_parameters(model):
    return [p for n, p in model.named_parameters() if "lora_" in n]


def finals(component, model):
    out = {}
    for key, value in get_peft_model_state_dict(model).items():
        module, part = key.rsplit(".lora_", 1)
        if module.startswith("text_model."):
            module = module[len("text_model."):]
        out[f"final.{component}/{module}.lora_{part[0]}"] = value.detach().clone().contiguous()
    return out


def run(case, shared):
    pipe = StableDiffusionXLPipeline.from_pretrained(MODEL, torch_dtype=torch.float32)
    unet, te1, te2 = pipe.unet, pipe.text_encoder, pipe.text_encoder_2
    for m in (unet, te1, te2):
        m.requires_grad_(False)
    add_lora(unet, ["to_k", "to_q", "to_v", "to_out.0"], 11)
    components = {"unet": unet}
    groups = [{"params": lora_parameters(unet), "lr": LR}]
    if case == "te":
        add_lora(te1, TE_TARGETS, 12)
        add_lora(te2, TE_TARGETS, 13)
        components.update(text_encoder=te1, text_encoder_2=te2)
        groups.append({"params": lora_parameters(te1) + lora_parameters(te2), "lr": TE_LR})
    StableDiffusionXLPipeline.save_lora_weights(
        OUT, weight_name=f"init.{case}.diffusers.safetensors",
        **{f"{c}_lora_layers": get_peft_model_state_dict(m) for c, m in components.items()})
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    params = [p for g in groups for p in g["params"]]
    losses = []
    for step in range(STEPS):
        with torch.set_grad_enabled(case == "te"):
            embeds, _, pooled, _ = pipe.encode_prompt(PROMPTS, do_classifier_free_guidance=False)
        noise, t = shared["noise"][step], shared["timesteps"][step].long()
        noisy = scheduler.add_noise(shared["x0"], noise, t)
        pred = unet(noisy, t, embeds, added_cond_kwargs={"text_embeds": pooled, "time_ids": shared["time_ids"]}).sample
        loss = F.mse_loss(pred[:1], noise[:1]) + 1.0 * F.mse_loss(pred[1:], noise[1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    print(f"{case}: losses {[f'{x:.6f}' for x in losses]}")
    out = {f"{case}.loss": torch.tensor(losses)}
    for c, m in components.items():
        out.update({f"{case}.{k}": v for k, v in finals(c, m).items()})
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    shared = {
        "x0": torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(7)),
        "noise": torch.randn(STEPS, 2, 4, 16, 16, generator=torch.Generator().manual_seed(8)),
        "timesteps": torch.randint(0, 1000, (STEPS, 2), generator=torch.Generator().manual_seed(9)).float(),
        "time_ids": torch.tensor(TIME_IDS),
    }
    goldens = dict(shared)
    for case in ["unet", "te"]:
        goldens.update(run(case, shared))
    save_file({k: v.contiguous() for k, v in goldens.items()}, os.path.join(OUT, "goldens.safetensors"))
    print({f: os.path.getsize(os.path.join(OUT, f)) for f in sorted(os.listdir(OUT))})


if __name__ == "__main__":
    main()
