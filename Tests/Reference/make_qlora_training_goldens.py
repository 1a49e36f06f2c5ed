"""QLoRA training goldens: peft LoRA trained on a bitsandbytes NF4 UNet, for the Swift QLoRA training parity test.

Run from the repository root, after make_lora_goldens.py (it reuses its inputs):
    /root/refenv/bin/python Tests/Reference/make_qlora_training_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, peft 0.21.2, bitsandbytes 0.50.2 installed with `pip install --no-deps bitsandbytes`).

The tiny SD-1-like UNet (Tests/DiffusionModelsTests/Fixtures/unet_sd1) is loaded the QLoRA way: diffusers'
BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
bnb_4bit_compute_dtype=torch.float32), i.e. every nn.Linear becomes a bnb Linear4bit (NF4, blocks of 64, absmax
double-quantized). The CPU fixes of make_qlora_goldens.py apply (imported from it: diffusers' "No GPU found" check
lifted; bitsandbytes' CPU dequantize_4bit kernel, which indexes the absmax per row and is wrong for rows that are
not a multiple of 64 weights - all of this UNet's attention layers are 16 or 32 wide - replaced by bitsandbytes'
own flat-block decoder; the AVX512-BF16 repacking turned off). The script checks that the 4-bit forward then
equals the F32 UNet whose Linear weights are bitsandbytes' dequantize_4bit of the stored codes.

Then peft's QLoRA recipe: `prepare_model_for_kbit_training(unet, use_gradient_checkpointing=False)` and a LoRA
(r=4, lora_alpha=8 on to_q, to_k, to_v, to_out.0; peft wraps each Linear4bit in its bnb LoRA layer). On this UNet
prepare_model_for_kbit_training only freezes every base parameter: its fp32 cast touches F16/BF16 parameters
(there are none in an F32 load; Params4bit are skipped) and its gradient-checkpointing branch needs
`enable_input_require_grads` / `get_input_embeddings`, which a UNet lacks (with the default
use_gradient_checkpointing=True it raises; the script records that). Input gradients need no hook here: the
LoRA branches' A and B require grad, so autograd reaches them through every 4-bit layer's MatMul4Bit backward.

A and B are drawn from a seeded generator (B nonzero, so both get gradients from the first step). Four steps of
    loss = mean((unet(noisy_latents, timesteps, context) − noise)²); loss.backward(); AdamW.step(); zero_grad()
with AdamW(lr 1e-2, weight decay 0.01), noisy_latents = DDPMScheduler(SD-1.5 betas).add_noise(latents, noise,
timesteps). Writes Tests/AdaptersTests/Fixtures/qlora_training_goldens.safetensors:
    noisy_latents [2, 4, 16, 16], noise [2, 4, 16, 16] (N(0, 1), seed 801), timesteps [2] (100, 700)
    init.<path>.lora_A / .lora_B     the initial adapter
    loss [4]                         each step's loss
    final.<path>.lora_A / .lora_B    the adapter after the fourth step
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_qlora_goldens  # noqa: E402,F401  (the CPU fixes described above, applied on import)

import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as bnbf  # noqa: E402
import torch  # noqa: E402
from diffusers import BitsAndBytesConfig, DDPMScheduler, UNet2DConditionModel  # noqa: E402
from peft import LoraConfig, prepare_model_for_kbit_training  # noqa: E402
from peft.tuners.lora.bnb import Linear4bit as LoraLinear4bit  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

UNET = os.path.join(HERE, "..", "DiffusionModelsTests", "Fixtures", "unet_sd1")
OUT = os.path.join(HERE, "..", "AdaptersTests", "Fixtures")
STEPS = 4
CONFIG = LoraConfig(r=4, lora_alpha=8, target_modules=["to_q", "to_k", "to_v", "to_out.0"])


def quantized_unet():
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(UNET, quantization_config=config, torch_dtype=torch.float32,
                                                device_map="cpu")
    for module in unet.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
    return unet


def dequantized_copy(unet4):
    """The F32 UNet with every Linear weight set to bitsandbytes' dequantize_4bit of the 4-bit one."""
    unet = UNet2DConditionModel.from_pretrained(UNET, torch_dtype=torch.float32)
    modules = dict(unet4.named_modules())
    with torch.no_grad():
        for name, m in unet.named_modules():
            if isinstance(m, torch.nn.Linear):
                w = modules[name].weight
                m.weight.copy_(bnbf.dequantize_4bit(w.data, w.quant_state))
    return unet


def main():
    inputs = load_file(os.path.join(OUT, "goldens.safetensors"))
    latents, context = inputs["unet_sample"], inputs["unet_context"]
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(801))
    timesteps = torch.tensor([100, 700])
    schedule = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    noisy = schedule.add_noise(latents, noise, timesteps)

    unet = quantized_unet()
    print("is_loaded_in_4bit:", getattr(unet, "is_loaded_in_4bit", None),
          "Linear4bit layers:", sum(isinstance(m, bnb.nn.Linear4bit) for m in unet.modules()))
    with torch.no_grad():
        four = unet(noisy, timesteps, encoder_hidden_states=context).sample
        plain = dequantized_copy(unet)(noisy, timesteps, encoder_hidden_states=context).sample
    gap = (four - plain).abs().max().item()
    print(f"4-bit forward vs F32 on the dequantized weights: max|Δ| {gap:.2e} (scale {plain.abs().max().item():.2f})")
    if gap > 1e-4 * plain.abs().max().item():
        sys.exit("bitsandbytes' 4-bit forward disagrees with its own dequantized weights on this CPU")

    try:
        prepare_model_for_kbit_training(quantized_unet())
        print("prepare_model_for_kbit_training(use_gradient_checkpointing=True) ran")
    except Exception as error:  # noqa: BLE001 - recorded, not hidden
        print(f"prepare_model_for_kbit_training(use_gradient_checkpointing=True): {type(error).__name__}: {error}")
    dtypes = {p.dtype for p in unet.parameters()}
    unet = prepare_model_for_kbit_training(unet, use_gradient_checkpointing=False)
    print("parameter dtypes before/after:", dtypes, {p.dtype for p in unet.parameters()},
          "trainable after:", sum(p.requires_grad for p in unet.parameters()))

    unet.add_adapter(CONFIG)
    wrapped = [n for n, m in unet.named_modules() if isinstance(m, LoraLinear4bit)]
    print(f"peft bnb LoRA layers: {len(wrapped)}")
    g = torch.Generator().manual_seed(800)
    pairs = {}
    with torch.no_grad():
        for name, m in sorted(unet.named_modules()):
            if isinstance(m, LoraLinear4bit):
                a, b = m.lora_A["default"].weight, m.lora_B["default"].weight
                a.copy_(torch.randn(a.shape, generator=g) / a.shape[1] ** 0.5)
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
                pairs[name] = (a, b)
    goldens = {"noisy_latents": noisy, "noise": noise, "timesteps": timesteps.float()}
    for name, (a, b) in pairs.items():
        goldens[f"init.{name}.lora_A"], goldens[f"init.{name}.lora_B"] = a.detach().clone(), b.detach().clone()
    trainable = [p for p in unet.parameters() if p.requires_grad]
    assert len(trainable) == 2 * len(pairs), "only the LoRA factors train"
    optimizer = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.01)
    losses = []
    unet.train()
    for _ in range(STEPS):
        out = unet(noisy, timesteps, encoder_hidden_states=context).sample
        loss = ((out - noise) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    print("losses", [f"{x:.6f}" for x in losses])
    goldens["loss"] = torch.tensor(losses)
    for name, (a, b) in pairs.items():
        goldens[f"final.{name}.lora_A"], goldens[f"final.{name}.lora_B"] = a.detach().clone(), b.detach().clone()
    moved = max((goldens[f"final.{n}.lora_B"] - goldens[f"init.{n}.lora_B"]).abs().max().item() for n in pairs)
    print(f"largest change of a B entry: {moved:.4f}")
    save_file({k: v.contiguous() for k, v in goldens.items()}, os.path.join(OUT, "qlora_training_goldens.safetensors"))


if __name__ == "__main__":
    main()
