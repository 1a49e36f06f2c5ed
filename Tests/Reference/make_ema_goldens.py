"""Golden values for the weight average of `train-base --ema` (Tests/TrainingTests/WeightAverageTests.swift):
diffusers.training_utils.EMAModel (its default warm-up, decay = min(DECAY, (1 + s)/(10 + s))) over two float32
parameters whose values follow a fixed sequence,

    w_n[i] = sin(0.3 · n + 0.7 · i) + 0.01 · n      (n: the update, 1-based; i: the element's flat index)

The averages after updates 1, 2, 3, 10 and 40 are recorded for decays 0.9 and 0.999 (the warm-up bound decides
the second one everywhere).

Run: /root/refenv/bin/python Tests/Reference/make_ema_goldens.py
Writes Tests/NNTests/Fixtures/ema_goldens.json
"""
import json
import math
import os

import torch
from diffusers.training_utils import EMAModel

HERE = os.path.dirname(__file__)
OUT = os.path.join(HERE, "..", "NNTests", "Fixtures", "ema_goldens.json")
SHAPES = {"a": [2, 3], "b": [4]}
RECORDED = [1, 2, 3, 10, 40]


def values(n, shape):
    count = math.prod(shape)
    return torch.tensor([math.sin(0.3 * n + 0.7 * i) + 0.01 * n for i in range(count)], dtype=torch.float32).reshape(shape)


cases = []
for decay in [0.9, 0.999]:
    params = [torch.nn.Parameter(torch.zeros(shape)) for shape in SHAPES.values()]
    ema = EMAModel(params, decay=decay)
    records = []
    for n in range(1, max(RECORDED) + 1):
        with torch.no_grad():
            for p, shape in zip(params, SHAPES.values()):
                p.copy_(values(n, shape))
        ema.step(params)
        if n in RECORDED:
            records.append({"update": n, "decay": ema.cur_decay_value,
                            "averages": {k: s.flatten().tolist() for k, s in zip(SHAPES, ema.shadow_params)}})
    cases.append({"decay": decay, "records": records})

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"shapes": SHAPES, "cases": cases}, f, indent=1)
print("wrote", OUT)
