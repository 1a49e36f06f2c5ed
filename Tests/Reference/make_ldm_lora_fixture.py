"""A kohya LoRA file whose UNet module names follow the original LDM checkpoint (`lora_unet_input_blocks_4_1_…`,
as A1111-era and SGM / SDXL trainers write them), for the Swift Adapters tests.

Run from the repository root, after make_lora_goldens.py:
    /root/refenv/bin/python Tests/Reference/make_ldm_lora_fixture.py
(diffusers 0.42.1). Rewrites the UNet keys of Tests/AdaptersTests/Fixtures/a.kohya.safetensors (diffusers module
names) with the LDM names of the tiny SD-1-like UNet (the correspondence of diffusers'
scripts/convert_diffusers_to_original_stable_diffusion.py, for its levels and layers_per_block), text-encoder
keys unchanged, into a.ldm.safetensors. Checked here: diffusers' own kohya loader
(`StableDiffusionPipeline.lora_state_dict(..., unet_config=...)`, which maps SGM block names back) reads the
new file into exactly the tensors it reads from the original. The goldens of adapter "a" then apply.
"""
import os

import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
UNET = os.path.join(HERE, "..", "DiffusionModelsTests", "Fixtures", "unet_sd1")
OUT = os.path.join(HERE, "..", "AdaptersTests", "Fixtures")
RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
          ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]


def ldm_prefixes(config):
    """diffusers module prefix → LDM module prefix."""
    levels, per = len(config.block_out_channels), config.layers_per_block
    table = [("time_embedding.linear_1", "time_embed.0"), ("time_embedding.linear_2", "time_embed.2"),
             ("conv_in", "input_blocks.0.0"), ("conv_out", "out.2"), ("mid_block.attentions.0", "middle_block.1")]
    for j in range(2):
        table.append((f"mid_block.resnets.{j}", f"middle_block.{2 * j}"))
    for i in range(levels):
        for j in range(per):
            table.append((f"down_blocks.{i}.resnets.{j}", f"input_blocks.{(per + 1) * i + j + 1}.0"))
            table.append((f"down_blocks.{i}.attentions.{j}", f"input_blocks.{(per + 1) * i + j + 1}.1"))
        if i < levels - 1:
            table.append((f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{(per + 1) * (i + 1)}.0.op"))
        for j in range(per + 1):
            table.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{(per + 1) * i + j}.0"))
            table.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{(per + 1) * i + j}.1"))
        if i < levels - 1:
            has_attention = config.up_block_types[i] == "CrossAttnUpBlock2D"
            table.append((f"up_blocks.{i}.upsamplers.0", f"output_blocks.{(per + 1) * i + per}.{2 if has_attention else 1}"))
    return table


def to_ldm(path, table):
    for ours, theirs in sorted(table, key=lambda p: -len(p[0])):
        if path == ours or path.startswith(ours + "."):
            rest = path[len(ours):]
            if ".resnets." in ours:
                for a, b in RESNET:
                    if rest == "." + a:
                        rest = "." + b
            return theirs + rest
    raise KeyError(path)


def main():
    unet = UNet2DConditionModel.from_pretrained(UNET)
    names = {p.replace(".", "_"): p for p, _ in unet.named_modules()}
    table = ldm_prefixes(unet.config)
    source = os.path.join(OUT, "a.kohya.safetensors")
    sd = load_file(source)
    out = {}
    for key, value in sd.items():
        if key.startswith("lora_unet_"):
            stem, suffix = key[len("lora_unet_"):].split(".", 1)
            key = "lora_unet_" + to_ldm(names[stem], table).replace(".", "_") + "." + suffix
        out[key] = value
    target = os.path.join(OUT, "a.ldm.safetensors")
    save_file(out, target, metadata={"ss_network_module": "networks.lora"})
    ours, _ = StableDiffusionPipeline.lora_state_dict(source, unet_config=unet.config)
    theirs, _ = StableDiffusionPipeline.lora_state_dict(target, unet_config=unet.config)
    assert sorted(ours) == sorted(theirs), sorted(set(ours) ^ set(theirs))[:6]
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    print(f"  {len(out)} tensors; diffusers reads a.ldm as a.kohya; e.g. {sorted(k for k in out if 'input_blocks_4' in k)[:1]}")


if __name__ == "__main__":
    main()
