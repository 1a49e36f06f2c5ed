// bench: kernel, model and I/O benchmarks. `swift run -c release bench --help`.
// Each suite lives in its own file and is listed here.
import Foundation

let suites: [(name: String, summary: String)] = [
    ("kernels", "GEMM, conv2d, attention, GroupNorm; --json; --torch to run bench/torch_kernels.py beside"),
    ("unet", "UNet forward (or --backward), random weights: --config sd15|sd21|tiny --batch N --size H --repeat N; --lora rank=R"),
    ("vae", "VAE decode (or --encode), random weights: --config sd15|tiny --size h --repeat N; bench/torch_models.py"),
    ("train", "one LoRA training step (rank-4 attention, AdamW): --config sd15|tiny --size H; bench/torch_train.py"),
    ("text", "CLIP text encoder forward (--config clip-l|clip-h|tiny, --rounds N); --torch runs bench/torch_text.py"),
    ("generate", "text-to-image with random weights: --config sd15|tiny --steps N --sampler NAME --size PIXELS; bench/torch_generate.py; --lora rank=R --batch N: per-image adapters"),
    ("io", "safetensors F16 -> F32 load (GB/s, peak RSS); PNG decode + resize; --gb N, --cold"),
    ("load", "load a model as generate does: PATH (folder or single .safetensors file) [--vae PATH] [--tokenizer DIR]; time, peak RSS"),
]

let arguments = Array(CommandLine.arguments.dropFirst())
guard let suite = arguments.first, suite != "--help", suite != "-h" else {
    print("usage: bench <suite> [options]\n")
    for s in suites { print("  \(s.name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(s.summary)") }
    exit(arguments.isEmpty ? 2 : 0)
}
switch suite {
case "kernels": runKernelBench(Array(arguments.dropFirst()))
case "unet": runUNetBench(Array(arguments.dropFirst()))
case "vae": runVAEBench(Array(arguments.dropFirst()))
case "text": runTextBench(Array(arguments.dropFirst()))
case "train": runTrainBench(Array(arguments.dropFirst()))
case "generate": runGenerateBench(Array(arguments.dropFirst()))
case "io": runIOBench(Array(arguments.dropFirst()))
case "load": runLoadBench(Array(arguments.dropFirst()))
default:
    FileHandle.standardError.write("bench: unknown suite '\(suite)'; suites: \(suites.map(\.name).joined(separator: ", "))\n".data(using: .utf8)!)
    exit(2)
}
