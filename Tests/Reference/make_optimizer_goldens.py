"""Golden values for Prodigy and Adafactor (Tests/NNTests/OptimizerParityTests.swift) and for the learning-rate
schedules diffusers' get_scheduler builds (Tests/TrainingTests/LearningRateScheduleTests.swift).

Optimisers: a small problem with four parameters shaped as LoRA weights are (a [4, 3] matrix, a [2, 3, 2, 2]
convolution kernel, a [5] vector and a [3, 4] matrix that starts at zero, as a LoRA up-projection does). Each step
the gradient is computed in float32 from the current parameters,

    g = c · (p − target) + 0.05 · sin(step + 0.37 · i)      (i: the element's flat index)

and recorded, so the Swift test feeds the same gradients and compares the parameters after every step. The
learning rate of each step is recorded too (some cases vary it as a schedule would). Cases use
prodigyopt.Prodigy (`pip install prodigyopt`, version 1.1.2) and transformers.optimization.Adafactor with the
options kohya's trainer exposes through --optimizer_args.

Schedules: diffusers.optimization.get_scheduler on an SGD optimiser, the rate of every step 0…total+2.

Run: /root/refenv/bin/python Tests/Reference/make_optimizer_goldens.py
Writes Tests/NNTests/Fixtures/optimizer_goldens.json and Tests/NNTests/Fixtures/lr_schedule_goldens.json
"""
import json
import math
import os

import torch
from diffusers.optimization import get_scheduler
from prodigyopt import Prodigy
from transformers.optimization import Adafactor

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, "..", "NNTests", "Fixtures")

SHAPES = {"lin.down": [4, 3], "conv.down": [2, 3, 2, 2], "bias": [5], "lin.up": [3, 4]}


def initial_parameters():
    g = torch.Generator().manual_seed(7)
    params = {}
    for name, shape in SHAPES.items():
        if name == "lin.up":
            params[name] = torch.zeros(shape)
        else:
            params[name] = torch.randn(shape, generator=g) * 0.5
    targets = {name: torch.randn(shape, generator=g) for name, shape in SHAPES.items()}
    return params, targets


def gradient(p, target, step, c):
    idx = torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape)
    return (c * (p.detach() - target) + 0.05 * torch.sin(step + 0.37 * idx)).float()


def flat(t):
    # float32 values: 9 significant digits give back the same float32
    return [float(f"{x:.9g}") for x in t.detach().flatten().tolist()]


def run_case(name, make, lrs, groups=None, coefficient=1.0):
    """groups: list of name lists with their lr scale (1 or 0); the optimiser's lr is set per step."""
    params, targets = initial_parameters()
    tensors = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
    groups = groups or [(list(SHAPES), 1.0)]
    opt = make([{"params": [tensors[k] for k in names], "scale": scale} for names, scale in groups])
    record = {"name": name, "groups": [{"names": names, "scale": scale} for names, scale in groups],
              "initial": {k: {"shape": SHAPES[k], "values": flat(v)} for k, v in params.items()}, "steps": []}
    for step, lr in enumerate(lrs):
        for group in opt.param_groups:
            if lr is not None:
                group["lr"] = lr * group["scale"]
        grads = {}
        for k, p in tensors.items():
            p.grad = gradient(p, targets[k], step, coefficient)
            grads[k] = flat(p.grad)
        opt.step()
        entry = {"lr": lr, "grads": grads, "params": {k: flat(p) for k, p in tensors.items()}}
        if isinstance(opt, Prodigy):
            entry["d"] = opt.param_groups[0]["d"]
        record["steps"].append(entry)
    return record


def prodigy(**kw):
    def make(groups):
        return Prodigy(groups, lr=1.0, **kw)
    return make


def adafactor(**kw):
    def make(groups):
        return Adafactor(groups, **kw)
    return make


def cosine(peak, n, warmup=0):
    out = []
    for s in range(n):
        if s < warmup:
            out.append(peak * s / max(1, warmup))
        else:
            out.append(peak * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (n - warmup))))
    return out


def main():
    n = 25
    cases = {"prodigy": [], "adafactor": []}
    cases["prodigy"].append(dict(run_case("defaults", prodigy(), [1.0] * n), settings={}))
    cases["prodigy"].append(dict(run_case(
        "kohya_preset", prodigy(weight_decay=0.01, decouple=True, use_bias_correction=True, safeguard_warmup=True,
                                d_coef=2.0), cosine(1.0, 60, warmup=3)),
        settings={"weight_decay": 0.01, "decouple": True, "use_bias_correction": True, "safeguard_warmup": True,
                  "d_coef": 2.0}))
    cases["prodigy"].append(dict(run_case(
        "coupled_decay_betas", prodigy(weight_decay=0.1, decouple=False, betas=(0.9, 0.99), beta3=0.95, d0=1e-4,
                                       eps=1e-6),
        [0.5] * n, coefficient=3.0),
        settings={"weight_decay": 0.1, "decouple": False, "beta1": 0.9, "beta2": 0.99, "beta3": 0.95, "d0": 1e-4,
                  "eps": 1e-6}))
    cases["prodigy"].append(dict(run_case(
        "frozen_group", prodigy(weight_decay=0.02), [1.0] * n,
        groups=[(["lin.down", "conv.down", "lin.up"], 1.0), (["bias"], 0.0)]),
        settings={"weight_decay": 0.02}))

    cases["adafactor"].append(dict(run_case(
        "relative_step", adafactor(lr=None, relative_step=True, scale_parameter=True, warmup_init=False), [None] * n),
        settings={"relative_step": True, "scale_parameter": True, "warmup_init": False}))
    cases["adafactor"].append(dict(run_case(
        "fixed_lr", adafactor(lr=1e-3, relative_step=False, scale_parameter=False, warmup_init=False),
        [1e-3 * min(1, s / 4) for s in range(n)]),
        settings={"relative_step": False, "scale_parameter": False, "warmup_init": False}))
    cases["adafactor"].append(dict(run_case(
        "warmup_init_beta1_decay", adafactor(lr=None, relative_step=True, scale_parameter=True, warmup_init=True,
                                             beta1=0.9, weight_decay=0.01), [None] * n),
        settings={"relative_step": True, "scale_parameter": True, "warmup_init": True, "beta1": 0.9,
                  "weight_decay": 0.01}))
    cases["adafactor"].append(dict(run_case(
        "scaled_fixed_lr_clip", adafactor(lr=1e-2, relative_step=False, scale_parameter=True, clip_threshold=0.5,
                                          decay_rate=-0.6, beta1=0.8),
        cosine(1e-2, n), coefficient=4.0),
        settings={"relative_step": False, "scale_parameter": True, "warmup_init": False, "clip_threshold": 0.5,
                  "decay_rate": -0.6, "beta1": 0.8}))
    with open(os.path.join(FIXTURES, "optimizer_goldens.json"), "w") as f:
        json.dump(cases, f, indent=None, separators=(",", ":"))

    schedules = []
    specs = [("constant_with_warmup", 1e-4, 5, 20, {}), ("cosine_with_restarts", 1e-3, 3, 40, {"num_cycles": 3}),
             ("cosine_with_restarts", 2e-4, 0, 17, {"num_cycles": 1}), ("polynomial", 1e-3, 4, 30, {"power": 2.0}),
             ("polynomial", 1.0, 0, 12, {"power": 1.0}), ("polynomial", 5e-4, 2, 25, {"power": 0.5}),
             ("cosine", 1e-4, 5, 30, {}), ("linear", 1e-4, 3, 20, {})]
    for name, peak, warmup, total, kw in specs:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
        sched = get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total, **kw)
        rates = []
        for _ in range(total + 3):
            rates.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        schedules.append({"name": name, "peak": peak, "warmup": warmup, "total": total,
                          "cycles": kw.get("num_cycles", 1), "power": kw.get("power", 1.0), "rates": rates})
    with open(os.path.join(FIXTURES, "lr_schedule_goldens.json"), "w") as f:
        json.dump(schedules, f, indent=1)


if __name__ == "__main__":
    main()
