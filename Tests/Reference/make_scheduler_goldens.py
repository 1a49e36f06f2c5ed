"""Golden values for Sources/Schedulers (Tests/SchedulersTests/SchedulerGoldenTests.swift).

For each case a diffusers scheduler is built with `from_config` (so class defaults fill missing keys,
as in diffusers pipelines), `set_timesteps(steps)` is called, and a pipeline-style loop runs on a
fixed "model" with a torch.Generator("cpu").manual_seed(seed) drawing the initial latents and every
sampler noise in diffusers' order:

    latents = randn(shape, generator) * init_noise_sigma
    for t in timesteps:
        x_in = scale_model_input(latents, t)
        out  = 0.8 * x_in + (t / 1000) * BASE          # BASE: fixed tensor stored in the file
        latents = step(out, t, latents, generator=generator [, eta]).prev_sample

Recorded: timesteps, sigmas (when the scheduler has them), init_noise_sigma, and each step's scaled
input and output. Also add_noise / get_velocity / SNR of the noise schedule.

Run: /root/refenv/bin/python Tests/Reference/make_scheduler_goldens.py   (needs scipy for LMS)
Writes Tests/SchedulersTests/Fixtures/scheduler_goldens.json
"""
import json
import os

import torch
from diffusers.training_utils import compute_snr
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, HeunDiscreteScheduler, LMSDiscreteScheduler, PNDMScheduler)

OUT = os.path.join(os.path.dirname(__file__), "..", "SchedulersTests", "Fixtures", "scheduler_goldens.json")
SHAPE = [1, 4, 4, 4]

# scheduler/scheduler_config.json of Stable Diffusion 1.x
SD1 = {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
       "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
       "trained_betas": None, "clip_sample": False}
# Stable Diffusion 2.x (768-v) style: v-prediction, trailing spacing
SD2V = dict(SD1, prediction_type="v_prediction", timestep_spacing="trailing")

CLASSES = {
    "ddpm": (DDPMScheduler, {}), "ddim": (DDIMScheduler, {}), "pndm": (PNDMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}), "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}), "lms": (LMSDiscreteScheduler, {}),
    "dpm++2m": (DPMSolverMultistepScheduler, {}),
    "dpm++2m_sde": (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++"}),
}

# (name, sampler, config, karras, steps, eta)
CASES = []
for s in CLASSES:
    CASES.append((f"sd1-{s}", s, SD1, False, 10, 0.0))
for s in ["euler", "heun", "lms", "dpm++2m", "dpm++2m_sde"]:
    CASES.append((f"sd1-{s}-karras", s, SD1, True, 10, 0.0))
for s in CLASSES:
    CASES.append((f"v-trailing-{s}", s, SD2V, False, 10, 0.0))
CASES += [
    ("v-trailing-dpm++2m-karras", "dpm++2m", SD2V, True, 10, 0.0),
    ("sd1-ddim-eta", "ddim", SD1, False, 10, 0.7),
    ("sd1-pndm-prk", "pndm", dict(SD1, skip_prk_steps=False), False, 10, 0.0),
    ("sd1-dpm++2m-25", "dpm++2m", SD1, False, 25, 0.0),
    ("sd1-dpm++2m-karras-20", "dpm++2m", SD1, True, 20, 0.0),
    ("sd1-euler-leading", "euler", dict(SD1, timestep_spacing="leading"), False, 10, 0.0),
    ("sd1-euler_a-leading", "euler_a", dict(SD1, timestep_spacing="leading"), False, 7, 0.0),
    ("sd1-heun-7", "heun", SD1, False, 7, 0.0),
    ("sd1-heun-leading", "heun", dict(SD1, timestep_spacing="leading"), False, 6, 0.0),
    ("sd1-dpm++2m-leading", "dpm++2m", dict(SD1, timestep_spacing="leading"), False, 10, 0.0),
    ("sd1-dpm++2m_sde-leading", "dpm++2m_sde", dict(SD1, timestep_spacing="leading"), False, 6, 0.0),
    ("sd1-lms-trailing-karras", "lms", dict(SD1, timestep_spacing="trailing"), True, 9, 0.0),
    ("sd1-ddim-linspace", "ddim", dict(SD1, timestep_spacing="linspace"), False, 12, 0.0),
    ("sample-ddim", "ddim", dict(SD1, prediction_type="sample"), False, 10, 0.0),
    ("sample-dpm++2m", "dpm++2m", dict(SD1, prediction_type="sample"), False, 10, 0.0),
    ("sample-euler", "euler", dict(SD1, prediction_type="sample"), False, 10, 0.0),
    ("defaults-ddim", "ddim", {}, False, 10, 0.0),
    ("defaults-ddpm", "ddpm", {}, False, 10, 0.0),
    ("defaults-pndm", "pndm", {}, False, 10, 0.0),
    ("defaults-heun", "heun", {}, False, 10, 0.0),
    ("defaults-euler", "euler", {}, False, 10, 0.0),
    ("cosine-ddpm", "ddpm", dict(SD1, beta_schedule="squaredcos_cap_v2"), False, 10, 0.0),
    ("cosine-dpm++2m", "dpm++2m", dict(SD1, beta_schedule="squaredcos_cap_v2"), False, 10, 0.0),
    ("linear-euler", "euler", dict(SD1, beta_schedule="linear"), False, 10, 0.0),
    ("ddpm-fixed-large", "ddpm", dict(SD1, variance_type="fixed_large"), False, 10, 0.0),
    ("sd1-ddim-1", "ddim", SD1, False, 1, 0.0),
    ("sd1-dpm++2m-sigma-min", "dpm++2m", dict(SD1, final_sigmas_type="sigma_min"), False, 10, 0.0),
    ("sd1-euler-sigma-min", "euler", dict(SD1, final_sigmas_type="sigma_min"), False, 10, 0.0),
    ("sd1-dpm++2m-no-lower-order-final", "dpm++2m", dict(SD1, lower_order_final=False), False, 8, 0.0),
    ("trained-betas-ddim", "ddim", {"trained_betas": [0.001 + 0.0005 * i for i in range(100)],
                                    "num_train_timesteps": 100}, False, 5, 0.0),
    ("sd1-dpm++2m-1", "dpm++2m", SD1, False, 1, 0.0),
]

SEED = 1234
BASE = torch.linspace(-1.5, 1.5, 64).reshape(SHAPE).flip(-1) * torch.cos(torch.arange(64.0)).reshape(SHAPE)


def flat(t):
    # 9 significant digits round-trip float32 exactly.
    return [float("%.9g" % v) for v in t.flatten().tolist()]


def run(name, sampler, config, karras, steps, eta):
    cls, extra = CLASSES[sampler]
    cfg = dict(config, **extra)
    if karras:
        cfg["use_karras_sigmas"] = True
    sched = cls.from_config(cfg)
    sched.set_timesteps(steps)
    g = torch.Generator("cpu").manual_seed(SEED)
    latents = torch.randn(SHAPE, generator=g) * sched.init_noise_sigma
    rec = {"name": name, "sampler": sampler, "config": config, "karras": karras, "steps": steps, "eta": eta,
           "seed": SEED, "timesteps": flat(sched.timesteps.float()),
           "init_noise_sigma": float(sched.init_noise_sigma),
           "sigmas": flat(sched.sigmas) if hasattr(sched, "sigmas") else None, "inputs": [], "outputs": []}
    for t in sched.timesteps:
        x_in = sched.scale_model_input(latents, t)
        out = 0.8 * x_in + (float(t) / 1000.0) * BASE
        kwargs = {}
        if sampler == "ddim":
            kwargs["eta"] = eta
        if sampler in ("ddpm", "ddim", "euler", "euler_a", "dpm++2m_sde", "lcm"):
            kwargs["generator"] = g
        latents = sched.step(out, t, latents, **kwargs).prev_sample
        rec["inputs"].append(flat(x_in))
        rec["outputs"].append(flat(latents))
    return rec


def schedule_case(name, config):
    sched = DDPMScheduler.from_config(config)
    g = torch.Generator("cpu").manual_seed(7)
    x0 = torch.randn([3, 2, 2, 2], generator=g)
    noise = torch.randn([3, 2, 2, 2], generator=g)
    ts = torch.tensor([0, 499, 999])
    ac = sched.alphas_cumprod
    snr_ts = [0, 1, 250, 500, 750, 999]
    snr = compute_snr(sched, torch.tensor(snr_ts))
    # min-SNR-5 weights as diffusers' train_text_to_image.py computes them
    clipped = torch.stack([snr, 5.0 * torch.ones_like(snr)], dim=1).min(dim=1)[0]
    weights = {"epsilon": clipped / snr, "v_prediction": clipped / (snr + 1)}
    return {"name": name, "config": config, "timesteps": ts.tolist(), "x0": flat(x0), "noise": flat(noise),
            "noisy": flat(sched.add_noise(x0, noise, ts)), "velocity": flat(sched.get_velocity(x0, noise, ts)),
            "alphas_cumprod": {str(t): float(ac[t]) for t in snr_ts},
            "snr": {str(t): float(v) for t, v in zip(snr_ts, snr)},
            "min_snr_5": {k: {str(t): float(v) for t, v in zip(snr_ts, w)} for k, w in weights.items()}}


def main():
    cases = [run(*c) for c in CASES]
    schedules = [schedule_case("sd1", SD1), schedule_case("v-trailing", SD2V),
                 schedule_case("cosine", dict(SD1, beta_schedule="squaredcos_cap_v2")),
                 schedule_case("defaults", {})]
    with open(OUT, "w") as f:
        json.dump({"shape": SHAPE, "base": flat(BASE), "cases": cases, "schedules": schedules}, f,
                  separators=(",", ":"))
    print("wrote", OUT, os.path.getsize(OUT), "bytes,", len(cases), "cases")


if __name__ == "__main__":
    main()
