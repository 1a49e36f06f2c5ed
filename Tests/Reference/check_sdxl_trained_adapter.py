"""Key accounting of an SDXL adapter trained by train-style: diffusers' StableDiffusionXLPipeline.load_lora_weights
must use every tensor of the file.

The file (Tests/PipelineTests/Fixtures/sdxl-training/trained.kohya.safetensors) is what
    .build/debug/train-style images --token sks --class dog --pipeline Tests/PipelineTests/Fixtures/tiny-sdxl \
        --num-class-images 2 --steps 3 --train-text-encoder --gradient-checkpointing --save-every 0 --out /tmp/sdxlrun
writes (kohya keys, fp16; copied from /tmp/sdxlrun/adapters/sks.safetensors). Run from the repository root:
    /root/refenv/bin/python Tests/Reference/check_sdxl_trained_adapter.py
(torch 2.13 cpu, diffusers 0.42.1, transformers 5.23.0, peft 0.21.2). It loads the file into the tiny-sdxl
pipeline, fails on any key diffusers leaves unconverted or peft reports as unexpected, checks that every module
of the file became a LoRA layer whose A, B and alpha/r are the file's, and writes trained.accepted.json:
{"verdict": "accepted", "tensors": {key: shape}, "modules": {component: count}}. SDXLTrainerTests compares the key
set and shapes of an adapter it trains with the same settings to that list.
"""
import json
import logging
import os

import torch
from diffusers import StableDiffusionXLPipeline
from diffusers.utils import logging as dlogging
from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "PipelineTests", "Fixtures")
OUT = os.path.join(FIXTURES, "sdxl-training")
FILE = os.path.join(OUT, "trained.kohya.safetensors")
PREFIXES = {"lora_unet_": "unet", "lora_te1_": "text_encoder", "lora_te2_": "text_encoder_2"}


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def main():
    with safe_open(FILE, "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    modules = {}
    for key in tensors:
        name = key.split(".")[0]
        component = next(c for p, c in PREFIXES.items() if name.startswith(p))
        modules.setdefault(component, set()).add(name)
    handler = Collect()
    dlogging.get_logger("diffusers").addHandler(handler)
    dlogging.get_logger("peft").addHandler(handler)
    pipe = StableDiffusionXLPipeline.from_pretrained(os.path.join(FIXTURES, "tiny-sdxl"), torch_dtype=torch.float32)
    pipe.load_lora_weights(FILE, adapter_name="sks")   # raises on keys its kohya conversion does not rename
    bad = [m for m in handler.messages if "unexpected" in m.lower() or "missing" in m.lower() or "not" in m.lower()]
    assert not bad, bad
    loaded = {}
    for component in ["unet", "text_encoder", "text_encoder_2"]:
        model = getattr(pipe, component)
        layers = [(n, m) for n, m in model.named_modules() if hasattr(m, "lora_A") and "sks" in m.lora_A]
        loaded[component] = len(layers)
        for n, m in layers:
            name = next(p for p, c in PREFIXES.items() if c == component)
            name += ("text_model." + n if component != "unet" and not n.startswith("text_model.") else n).replace(".", "_")
            down, up = tensors[name + ".lora_down.weight"].float(), tensors[name + ".lora_up.weight"].float()
            alpha = tensors[name + ".alpha"].float().item()
            assert torch.equal(m.lora_A["sks"].weight, down), name
            assert torch.equal(m.lora_B["sks"].weight, up), name
            assert abs(m.scaling["sks"] - alpha / down.shape[0]) < 1e-6, (name, m.scaling["sks"], alpha)
    expected = {c: len(v) for c, v in modules.items()}
    assert loaded == {c: expected.get(c, 0) for c in loaded}, (loaded, expected)
    verdict = {"verdict": "accepted", "file": os.path.basename(FILE), "modules": loaded,
               "tensors": {k: list(v.shape) for k, v in sorted(tensors.items())}}
    with open(os.path.join(OUT, "trained.accepted.json"), "w") as f:
        json.dump(verdict, f, indent=1, sort_keys=True)
    print(f"accepted: {len(tensors)} tensors, modules {loaded}")


if __name__ == "__main__":
    main()
