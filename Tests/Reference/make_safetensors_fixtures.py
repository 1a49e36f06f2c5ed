"""Writes small safetensors files with the Python `safetensors` package, for SafeTensorsTests.

Run: /root/refenv/bin/python Tests/Reference/make_safetensors_fixtures.py
Outputs (committed): Tests/SafeTensorsTests/Fixtures/python_dtypes.safetensors and python_dtypes.json,
the expected values of every tensor as float64 lists (what the Swift reader must return as F32).
"""
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

out = os.path.join(os.path.dirname(__file__), "..", "SafeTensorsTests", "Fixtures")
g = torch.Generator().manual_seed(0)
base = torch.randn(2, 3, 4, generator=g) * 3
tensors = {
    "f64": base.double(),
    "f32": base.float(),
    "f16": base.half(),
    "bf16": base.bfloat16(),
    "i64": torch.tensor([[-(2**40), -1, 0], [1, 7, 2**40]], dtype=torch.int64),
    "i32": torch.tensor([-(2**31), -5, 0, 5, 2**31 - 1], dtype=torch.int32),
    "i16": torch.tensor([-32768, -2, 0, 3, 32767], dtype=torch.int16),
    "i8": torch.tensor([-128, -1, 0, 1, 127], dtype=torch.int8),
    "u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True], dtype=torch.bool),
    "scalar": torch.tensor(2.5, dtype=torch.float32),
    "empty": torch.zeros(0, 3, dtype=torch.float32),
    "unet.down_blocks.0.attentions.0.proj_in.weight": (torch.randn(8, 4, 1, 1, generator=g)).half(),
}
metadata = {"format": "pt", "ss_network_dim": "4", "note": "ünïcode ✓"}
save_file(tensors, os.path.join(out, "python_dtypes.safetensors"), metadata=metadata)
expected = {
    "metadata": metadata,
    "tensors": {
        k: {"shape": list(v.shape), "values": v.double().flatten().tolist()} for k, v in tensors.items()
    },
}
with open(os.path.join(out, "python_dtypes.json"), "w") as f:
    json.dump(expected, f, indent=1)
print("wrote", sorted(tensors))
