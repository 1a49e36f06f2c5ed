#!/usr/bin/env python3
"""PyTorch timings of the `bench kernels` cases (CPU, 2 threads, channels_last for conv).

    /root/refenv/bin/python bench/torch_kernels.py [--threads N] [--cpu-time]   # all cases, JSON to stdout
    /root/refenv/bin/python bench/torch_kernels.py --serve    # used by `bench kernels --torch`:
        prints "ready", then answers each stdin line "<case name>\t<reps>" with {"name":..., "seconds":[...]}

Case names are shared with Sources/bench/KernelBench.swift (and the other *Bench.swift case lists).
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

def _option(flag, default):
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv[:-1] else default


# `--threads N` (default 2); `--cpu-time` times by process CPU time instead of the wall clock (for
# comparisons on a machine shared with other work, where descheduled time would otherwise count).
torch.set_num_threads(int(_option("--threads", "2")))
_clock = time.process_time if "--cpu-time" in sys.argv else time.perf_counter
torch.manual_seed(0)
print(f"torch_kernels.py: torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}",
      file=sys.stderr)


def gemm(m, k, n, transposed_b=False):
    a = torch.randn(m, k)
    b = torch.randn(n, k).t() if transposed_b else torch.randn(k, n)
    c = torch.empty(m, n)
    return 2.0 * m * n * k, lambda: torch.mm(a, b, out=c)


def gemm_transposed_a(m, k, n):
    """C = Aᵀ·B with A stored K x M (a LoRA pair's weight gradient)."""
    a = torch.randn(k, m)
    b = torch.randn(k, n)
    c = torch.empty(m, n)
    return 2.0 * m * n * k, lambda: torch.mm(a.t(), b, out=c)


def conv3x3(hw, cin, cout, backward, n=1):
    x = torch.randn(n, cin, hw, hw).to(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, 3, 3).to(memory_format=torch.channels_last)
    b = torch.randn(cout)
    flops = 2.0 * n * hw * hw * cin * cout * 9
    if not backward:
        def fwd():
            with torch.no_grad():
                F.conv2d(x, w, b, padding=1)
        return flops, fwd
    x.requires_grad_(True); w.requires_grad_(True); b.requires_grad_(True)
    y = F.conv2d(x, w, b, padding=1)
    dy = torch.randn_like(y).contiguous(memory_format=torch.channels_last)
    # Same work as the Swift case: dX, dW and db from a stored output gradient (no forward).
    return 2 * flops, lambda: torch.autograd.grad(y, (x, w, b), dy, retain_graph=True)


def conv_weight_grad(hw, cin, cout, n, k=3):
    """The weight gradient alone (a frozen input, as a LoRA down or up convolution's)."""
    x = torch.randn(n, cin, hw, hw).to(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, k, k).to(memory_format=torch.channels_last).requires_grad_(True)
    y = F.conv2d(x, w, padding=k // 2)
    dy = torch.randn_like(y).contiguous(memory_format=torch.channels_last)
    return 2.0 * n * hw * hw * cin * cout * k * k, lambda: torch.autograd.grad(y, (w,), dy, retain_graph=True)


CASES = {}
for m, k, n in [(4096, 320, 320), (4096, 320, 960), (4096, 2880, 320), (1024, 5760, 640), (256, 11520, 1280),
                (64, 1280, 1280)]:
    CASES[f"sgemm {m}x{k}x{n}"] = (lambda m=m, k=k, n=n: gemm(m, k, n))
for m, k, n in [(4096, 320, 320), (64, 1280, 1280), (8192, 320, 2560), (2048, 640, 5120), (512, 1280, 10240)]:
    CASES[f"sgemm {m}x{k}x{n} Bt"] = (lambda m=m, k=k, n=n: gemm(m, k, n, True))
for m, k, n in [(8, 2048, 64), (64, 2048, 8), (8, 512, 128), (128, 512, 8), (8, 8192, 32), (512, 2048, 8),
                (4, 4096, 320), (320, 4096, 4), (4, 1024, 1280), (32, 4096, 320), (320, 4096, 32), (32, 1024, 1280),
                (64, 4096, 320), (320, 4096, 64), (64, 1024, 1280)]:
    CASES[f"sgemm At {m}x{k}x{n}"] = (lambda m=m, k=k, n=n: gemm_transposed_a(m, k, n))
for n, hw, cin, cout in [(1, 64, 320, 320), (1, 32, 640, 640), (1, 16, 1280, 1280), (2, 64, 32, 32), (2, 32, 64, 64),
                         (2, 16, 128, 128), (1, 128, 512, 512), (1, 256, 256, 256)]:
    base = "conv3x3 " + (f"{n}B " if n > 1 else "") + f"{hw}x{hw}x{cin}->{cout}"
    CASES[base + " fwd"] = (lambda hw=hw, cin=cin, cout=cout, n=n: conv3x3(hw, cin, cout, False, n))
    CASES[base + " bwd"] = (lambda hw=hw, cin=cin, cout=cout, n=n: conv3x3(hw, cin, cout, True, n))
for n, hw, cin, cout in [(2, 64, 32, 8), (2, 32, 64, 8), (2, 16, 128, 8), (1, 64, 320, 16), (1, 32, 640, 32),
                         (1, 16, 1280, 64), (2, 64, 32, 32), (1, 64, 320, 64), (16, 64, 32, 32), (16, 32, 64, 64),
                         (16, 64, 96, 32), (16, 32, 192, 64)]:
    name = "conv3x3 " + (f"{n}B " if n > 1 else "") + f"{hw}x{hw}x{cin}->{cout} dW"
    CASES[name] = (lambda hw=hw, cin=cin, cout=cout, n=n: conv_weight_grad(hw, cin, cout, n))
for hw, cout in [(64, 32), (32, 64), (16, 128)]:
    CASES[f"conv1x1 2B {hw}x{hw}x8->{cout} dW"] = (lambda hw=hw, cout=cout: conv_weight_grad(hw, 8, cout, 2, k=1))



def attention(keys, backward, heads=8, queries=4096, d=40):
    """F.scaled_dot_product_attention (the CPU flash kernel); backward = dq, dk, dv from a stored output."""
    q, k, v = torch.randn(1, heads, queries, d), torch.randn(1, heads, keys, d), torch.randn(1, heads, keys, d)
    unit = float(heads * queries * keys * d)
    if not backward:
        def fwd():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v)
        return 4 * unit, fwd
    for t in (q, k, v):
        t.requires_grad_(True)
    out = F.scaled_dot_product_attention(q, k, v)
    dout = torch.randn_like(out)
    return 10 * unit, lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)


def group_norm(backward, c=320, hw=64, groups=32):
    """F.group_norm with affine γ, β on a channels_last map (the layout our NHWC tensors have)."""
    x = torch.randn(1, c, hw, hw).to(memory_format=torch.channels_last)
    g, b = torch.randn(c), torch.randn(c)
    count = float(c * hw * hw)
    if not backward:
        def fwd():
            with torch.no_grad():
                F.group_norm(x, groups, g, b)
        return 8 * count, fwd
    for t in (x, g, b):
        t.requires_grad_(True)
    y = F.group_norm(x, groups, g, b)
    dy = torch.randn_like(y)
    return 12 * count, lambda: torch.autograd.grad(y, (x, g, b), dy, retain_graph=True)


def bf16_linear(m, k, n):
    """F32 activations times a BF16 weight (`bf16 linear`, ours: rounded per call): here the activation is cast to
    bfloat16 each call and the product is a bfloat16 matmul, as `torch_dtype=torch.bfloat16` runs a Linear."""
    a = torch.randn(m, k)
    w = torch.randn(n, k).to(torch.bfloat16)
    return 2.0 * m * n * k, lambda: torch.nn.functional.linear(a.to(torch.bfloat16), w)


def bf16_conv3x3(hw, cin, cout):
    x = torch.randn(1, cin, hw, hw).to(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, 3, 3).to(torch.bfloat16).to(memory_format=torch.channels_last)
    b = torch.randn(cout).to(torch.bfloat16)

    def fwd():
        with torch.no_grad():
            F.conv2d(x.to(torch.bfloat16), w, b, padding=1)
    return 2.0 * hw * hw * cin * cout * 9, fwd


for m, k, n in [(4096, 320, 320), (4096, 2880, 320), (256, 11520, 1280), (64, 1280, 1280)]:
    CASES[f"bf16 linear {m}x{k}x{n}"] = (lambda m=m, k=k, n=n: bf16_linear(m, k, n))
for hw, cin, cout in [(64, 320, 320), (32, 640, 640), (16, 1280, 1280)]:
    CASES[f"bf16 conv3x3 {hw}x{hw}x{cin}->{cout} fwd"] = (lambda hw=hw, cin=cin, cout=cout: bf16_conv3x3(hw, cin, cout))


def add_ops_cases(cases):
    """Attention and GroupNorm cases (Sources/bench/OpsBench.swift)."""
    for kind, keys in [("self", 4096), ("cross", 77)]:
        base = f"attention {kind} 8x4096x{keys}x40"
        cases[base + " fwd"] = (lambda keys=keys: attention(keys, False))
        cases[base + " bwd"] = (lambda keys=keys: attention(keys, True))
    for kind, heads, queries, keys, d in [("self", 64, 1024, 1024, 16), ("self", 64, 256, 256, 32),
                                          ("cross", 64, 1024, 32, 16), ("self", 16, 1024, 1024, 16)]:
        base = f"attention {kind} {heads}x{queries}x{keys}x{d}"
        cases[base + " fwd"] = (lambda a=(keys, heads, queries, d): attention(a[0], False, a[1], a[2], a[3]))
        cases[base + " bwd"] = (lambda a=(keys, heads, queries, d): attention(a[0], True, a[1], a[2], a[3]))
    cases["groupnorm 32g 64x64x320 fwd"] = lambda: group_norm(False)
    cases["groupnorm 32g 64x64x320 bwd"] = lambda: group_norm(True)


add_ops_cases(CASES)
_prepared = {}


def timings(name, reps):
    if name not in _prepared:
        flops, fn = CASES[name]()
        fn(); fn()
        _prepared[name] = (flops, fn)
    flops, fn = _prepared[name]
    out = []
    for _ in range(reps):
        t0 = _clock()
        fn()
        out.append(_clock() - t0)
    return flops, out


def main():
    if "--serve" in sys.argv:
        print("ready", flush=True)
        for line in sys.stdin:
            name, reps = line.rstrip("\n").split("\t")
            if name not in CASES:
                print(json.dumps({"name": name, "seconds": [], "error": "unknown case"}), flush=True)
                continue
            _, secs = timings(name, int(reps))
            print(json.dumps({"name": name, "seconds": secs}), flush=True)
        return
    results = []
    for name in CASES:
        flops, secs = timings(name, 5)
        secs.sort()
        med = secs[len(secs) // 2]
        results.append({"name": name, "median_ms": med * 1e3, "gflops": flops / med * 1e-9})
        _prepared.pop(name)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "cases": results}, indent=1))


if __name__ == "__main__":
    main()
