"""Golden values for TorchGenerator (Tests/SchedulersTests/TorchGeneratorTests.swift).

Records torch.randn / torch.rand outputs (float32 bit patterns) for consecutive draws from one
torch.Generator("cpu").manual_seed(seed), in the order diffusers draws them (initial latents, then
one noise tensor per sampler step), plus sizes that exercise both of torch's normal paths.

Run: /root/refenv/bin/python Tests/Reference/make_torch_rng_goldens.py
Writes Tests/SchedulersTests/Fixtures/torch_rng.json
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "SchedulersTests", "Fixtures", "torch_rng.json")

# (op, shape) sequences drawn from one generator per seed.
SEQUENCES = {
    "sizes": [("randn", [1]), ("randn", [7]), ("randn", [16]), ("randn", [17]), ("randn", [100]),
              ("randn", [4, 8, 8]), ("randn", [1]), ("randn", [7]), ("randn", [33]), ("randn", [1])],
    "diffusers": [("randn", [1, 4, 8, 8]), ("randn", [1, 4, 8, 8]), ("randn", [1, 4, 8, 8]),
                  ("randn", [1, 4, 8, 8])],
    "uniform": [("rand", [5]), ("randn", [3]), ("rand", [20]), ("randn", [1]), ("randn", [2, 3, 5, 5])],
    "long": [("randn", [2, 4, 32, 32])],
}
SEEDS = [0, 42, 1234, 2**32 + 5]


def bits(t):
    return t.contiguous().view(torch.int32).flatten().tolist()


def main():
    cases = []
    for name, seq in SEQUENCES.items():
        for seed in (SEEDS if name != "long" else [42]):
            g = torch.Generator("cpu").manual_seed(seed)
            draws = []
            for op, shape in seq:
                fn = torch.randn if op == "randn" else torch.rand
                t = fn(shape, generator=g, dtype=torch.float32)
                draws.append({"op": op, "shape": shape, "bits": [b & 0xFFFFFFFF for b in bits(t)]})
            cases.append({"name": name, "seed": seed, "draws": draws})
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
                   "cases": cases}, f, separators=(",", ":"))
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
