"""bitsandbytes 4-bit (NF4 / FP4) storage goldens for the Swift quantization tests.

Run from the repository root:
    /root/refenv/bin/python Tests/Reference/make_quant_goldens.py
(torch 2.13 cpu, bitsandbytes 0.50.2 installed with `pip install --no-deps bitsandbytes`; its CPU backend
quantizes with the default torch kernel and dequantizes with its C++ kernel). Writes
Tests/QuantizationTests/Fixtures/quant_goldens.safetensors with, for every case NAME:

    NAME.input             F32 [rows, cols]   seeded weights (normal · 0.02 with a few outliers; "zero_block"
                                              has a block of exact zeros)
    NAME.packed            U8  [n/2 rounded up, 1]  quantize_4bit bytes, compress_statistics=False
    NAME.absmax            F32 [blocks]       per-block absmax (blocksize 64)
    NAME.dequantized       F32 [rows, cols]   dequantize_4bit of the above
    NAME.nested.packed     U8                 the same with compress_statistics=True (double quantization)
    NAME.nested.absmax     U8  [blocks]       absmax - offset, quantized blockwise (256) with the dynamic map
    NAME.nested.nested_absmax   F32 [ceil(blocks/256)]
    NAME.nested.offset     F32 [1]            mean of the absmax
    NAME.nested.dequantized F32 [rows, cols]
and `dynamic_map` (F32 [256], the nested quant map as the state carries it after a CPU quantization),
`nf4.quant_state` / `fp4.quant_state` (U8: the packed JSON `quant_state.bitsandbytes__<type>` of the first
case with compress_statistics=True, from QuantState.as_dict(packed=True)).
"""
import json
import os

import torch
import bitsandbytes.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "QuantizationTests", "Fixtures", "quant_goldens.safetensors")

CASES = [  # name, quant type, shape
    ("nf4_32x128", "nf4", (32, 128)),
    ("nf4_40x70", "nf4", (40, 70)),        # 2800 weights: blocks straddle rows, the last block is partial
    ("nf4_zero_block", "nf4", (8, 64)),
    ("nf4_520x64", "nf4", (520, 64)),      # 520 blocks: three nested blocks of 256, the last partial
    ("fp4_32x128", "fp4", (32, 128)),
    ("fp4_40x70", "fp4", (40, 70)),
    ("fp4_zero_block", "fp4", (8, 64)),
]


def weights(shape, seed, zero_block):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) * 0.02
    flat = w.view(-1)
    idx = torch.randint(0, flat.numel(), (max(1, flat.numel() // 500),), generator=g)
    flat[idx] *= 8
    if zero_block:
        flat[64:128] = 0
    return w


def main():
    out = {}
    states = {}
    for seed, (name, qtype, shape) in enumerate(CASES):
        w = weights(shape, 1000 + seed, "zero_block" in name)
        out[f"{name}.input"] = w.clone()
        q, s = F.quantize_4bit(w, blocksize=64, quant_type=qtype, compress_statistics=False)
        out[f"{name}.packed"] = q.clone()
        out[f"{name}.absmax"] = s.absmax.clone()
        out[f"{name}.dequantized"] = F.dequantize_4bit(q, s).clone()
        qn, sn = F.quantize_4bit(w, blocksize=64, quant_type=qtype, compress_statistics=True)
        assert sn.blocksize == 64 and sn.state2.blocksize == 256
        out[f"{name}.nested.packed"] = qn.clone()
        out[f"{name}.nested.absmax"] = sn.absmax.clone()
        out[f"{name}.nested.nested_absmax"] = sn.state2.absmax.clone()
        out[f"{name}.nested.offset"] = sn.offset.reshape(1).clone()
        out[f"{name}.nested.dequantized"] = F.dequantize_4bit(qn, sn).clone()
        out["dynamic_map"] = sn.state2.code.clone()
        if qtype not in states:
            d = sn.as_dict(packed=True)
            states[qtype] = d
            key = f"quant_state.bitsandbytes__{qtype}"
            out[f"{qtype}.quant_state"] = d[key].clone()
            print(qtype, bytes(d[key].tolist()).decode())
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, OUT)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
