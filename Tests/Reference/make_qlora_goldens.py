"""4-bit (bitsandbytes) UNet goldens: diffusers' pipeline with a UNet loaded through BitsAndBytesConfig, and the
quantized UNet folders diffusers saves, for the Swift QLoRA parity and loading tests.

Run from the repository root, after make_pipeline_goldens.py:
    /root/refenv/bin/python Tests/Reference/make_qlora_goldens.py
(torch 2.13 cpu, diffusers 0.42.1, bitsandbytes 0.50.2 installed with `pip install --no-deps bitsandbytes`).

diffusers' bitsandbytes quantizer refuses to run without CUDA (`validate_environment` raises "No GPU found. A
GPU is needed for quantization."), although bitsandbytes >= 0.48 quantizes, dequantizes and multiplies on the
CPU. This script disables only that environment check; everything else (which modules become Linear4bit,
quantization while loading, the 4-bit forward, save_pretrained's serialization) is diffusers' and
bitsandbytes' own code. On a CPU with AVX512-BF16, bitsandbytes' Linear4bit repacks its weight for a BF16
kernel at the first inference call (and fails for in_features < blocksize); the script turns that off
(`support_avx512bf16_for_cpu = False`), which is the path every other CPU takes: dequantize_4bit, then an F32
matmul. bitsandbytes' CPU C++ dequantize_4bit kernel indexes the absmax per row (row · (in_features // 64) + …),
which disagrees with the flat blocks its own quantize_4bit writes whenever in_features is not a multiple of 64
(tiny-sd has 32-wide layers; SD's 320/640/768/1280… are all multiples of 64, where it agrees): the script
re-registers the CPU kernel of bitsandbytes::dequantize_4bit as bitsandbytes' device-independent decoder `_dequantize_4bit_compute` (its default
backend, the flat-block semantics of the format and of its CUDA kernels). The saved folders are rewritten with the unquantized tensors in F16 (they are F16 in tiny-sd, so
exactly), to keep the fixtures small; the 4-bit tensors and their quant states are stored as diffusers wrote them.

Writes, under Tests/QuantizationTests/Fixtures/:
    unet-nf4/          tiny-sd's UNet loaded with BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                       bnb_4bit_compute_dtype=torch.float32) and saved with save_pretrained
    unet-fp4-nested/   the same with bnb_4bit_quant_type="fp4", bnb_4bit_use_double_quant=True
    qlora_goldens.safetensors
        latents.euler_nf4, latents.euler_fp4_nested   final latents of StableDiffusionPipeline (tiny-sd with that
                       UNet): Euler, 10 steps, guidance 7.5, PROMPT / NEGATIVE of make_pipeline_goldens.py, the
                       injected init_latents of latents_goldens.safetensors, output_type="latent"
        unet.sample [2, 4, 16, 16], unet.context [2, 77, 32]   seeded inputs; unet.out_nf4: the NF4 UNet's output
                           at timestep 500
        image.euler_nf4    output_type="np" image [1, 32, 32, 3] with generator=torch.Generator("cpu").manual_seed(SEED)
"""
import os
import shutil

import numpy as np
import bitsandbytes as bnb
from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
from bitsandbytes.backends.utils import _get_4bit_code
import torch
from diffusers import BitsAndBytesConfig, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.quantizers.bitsandbytes import bnb_quantizer
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
PIPE = os.path.join(HERE, "..", "PipelineTests", "Fixtures")
MODEL = os.path.join(PIPE, "tiny-sd")
OUT = os.path.join(HERE, "..", "QuantizationTests", "Fixtures")
PROMPT = "a photo of sks dog in the snow"
NEGATIVE = "blurry, low quality"
SEED = 1234
QUANT_KEYS = (".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".quant_state.")

bnb_quantizer.BnB4BitDiffusersQuantizer.validate_environment = lambda self, *args, **kwargs: None


@torch.library.register_kernel("bitsandbytes::dequantize_4bit", "cpu")
def dequantize_flat(A, absmax, blocksize, quant_type, shape, dtype):
    """The default backend's dequantize_4bit (bitsandbytes/backends/default/ops.py), for every CPU caller."""
    data = A if A.dtype == torch.uint8 else A.view(torch.uint8)
    return _dequantize_4bit_compute(data.reshape(-1), absmax.float(), _get_4bit_code(quant_type, A.device), blocksize,
                                    shape, dtype)


def quantized_unet(quant_type, nested):
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                                bnb_4bit_compute_dtype=torch.float32, bnb_4bit_use_double_quant=nested)
    unet = UNet2DConditionModel.from_pretrained(os.path.join(MODEL, "unet"), quantization_config=config,
                                                torch_dtype=torch.float32, device_map="cpu")
    for module in unet.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
    return unet


def shrink(folder):
    """The unquantized F32 tensors (F16 in tiny-sd) back to F16; quantized ones and quant states untouched."""
    path = os.path.join(folder, "diffusion_pytorch_model.safetensors")
    tensors = load_file(path)
    save_file({k: v.half() if v.dtype == torch.float32 and not any(s in k for s in QUANT_KEYS) else v
               for k, v in tensors.items()}, path, metadata={"format": "pt"})


def main():
    init = load_file(os.path.join(PIPE, "latents_goldens.safetensors"))["init_latents"]
    goldens = {}
    for key, folder, quant_type, nested in [("euler_nf4", "unet-nf4", "nf4", False),
                                            ("euler_fp4_nested", "unet-fp4-nested", "fp4", True)]:
        unet = quantized_unet(quant_type, nested)
        if key == "euler_nf4":
            g = torch.Generator().manual_seed(0)
            sample, context = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 77, 32, generator=g)
            with torch.no_grad():
                goldens["unet.out_nf4"] = unet(sample, 500, context).sample
            goldens["unet.sample"], goldens["unet.context"] = sample, context
        path = os.path.join(OUT, folder)
        shutil.rmtree(path, ignore_errors=True)
        unet.save_pretrained(path)
        shrink(path)
        pipe = StableDiffusionPipeline.from_pretrained(MODEL, unet=unet, torch_dtype=torch.float32, safety_checker=None,
                                                       requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
        with torch.no_grad():
            out = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=10, guidance_scale=7.5, height=32, width=32,
                       latents=init.clone(), output_type="latent").images
            goldens["latents." + key] = out
            print(key, "max|x|", out.abs().max().item())
            if key == "euler_nf4":
                image = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=10, guidance_scale=7.5, height=32,
                             width=32, output_type="np", generator=torch.Generator("cpu").manual_seed(SEED)).images
                goldens["image." + key] = torch.from_numpy(np.ascontiguousarray(image)).float()
    save_file({k: v.contiguous() for k, v in goldens.items()}, os.path.join(OUT, "qlora_goldens.safetensors"))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"fixtures: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
