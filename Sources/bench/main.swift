// bench: kernel, model and I/O benchmarks. `swift run -c release bench --help`.
// Each suite lives in its own file and is listed here with the options it takes (CLI's parser: an unknown
// option is a usage error, exit 2; a failure exits 1).
import CLI
import Foundation

struct Suite {
    let name: String
    let summary: String
    let options: Set<String>
    let flags: Set<String>
    let run: (BenchArguments) throws -> Void
}

let suites: [Suite] = [
    Suite(name: "kernels", summary: "GEMM, conv2d, attention, GroupNorm; --json; --torch to run bench/torch_kernels.py beside; --isa all|LEVEL",
          options: ["threads", "filter", "rounds", "python", "script", "isa"],
          flags: ["json", "torch", "skip-peak", "cpu-time"], run: runKernelBench),
    Suite(name: "unet", summary: "UNet forward (or --backward), random weights: --config sd15|sd21|sdxl|tiny|toy --batch N --size H --repeat N; --lora rank=R; --quantize nf4|fp4; --precision bf16; --profile: time per kernel (--profile-shapes: and per operand shapes)",
          options: ["config", "batch", "size", "tokens", "repeat", "threads", "lora", "quantize", "precision"],
          flags: ["count", "cpu-time", "backward", "checkpointing", "quantize-convs", "profile", "profile-shapes"], run: runUNetBench),
    Suite(name: "vae", summary: "VAE decode (or --encode), random weights: --config sd15|tiny --size h --repeat N; --precision bf16; bench/torch_models.py",
          options: ["config", "batch", "size", "repeat", "threads", "precision"], flags: ["count", "encode", "tiled"], run: runVAEBench),
    Suite(name: "train", summary: "LoRA training steps (AdamW): --config sd15|sdxl|tiny|toy --size H --batch N --repeat N; --quantize nf4|fp4 [--quantize-convs]; faults and allocations per step; --profile: time per kernel (--profile-shapes: and per operand shapes); --precision bf16; toy: the class row toward the base's prediction (--no-prior-base: not); bench/torch_train.py",
          options: ["config", "size", "rank", "repeat", "threads", "batch", "quantize", "precision"], flags: ["checkpointing", "profile", "profile-shapes", "quantize-convs", "no-prior-base"], run: runTrainBench),
    Suite(name: "text", summary: "CLIP text encoder forward (--config clip-l|clip-h|tiny, --rounds N); --torch runs bench/torch_text.py",
          options: ["config", "rounds", "python", "script", "weights"], flags: ["torch"], run: runTextBench),
    Suite(name: "generate", summary: "text-to-image with random weights: --config sd15|tiny (or --pipeline DIR: a model folder) --steps N --sampler NAME --size PIXELS; bench/torch_generate.py; --lora rank=R --batch N: per-image adapters; --precision bf16",
          options: ["config", "pipeline", "steps", "sampler", "cfg", "size", "threads", "lora", "batch", "rounds", "precision"],
          flags: ["taesd"],
          run: runGenerateBench),
    Suite(name: "io", summary: "safetensors F16 -> F32 load (GB/s, peak RSS); PNG decode + resize; --gb N, --cold",
          options: ["gb", "keep", "png-runs", "repeat"], flags: ["cold"], run: runIOBench),
    Suite(name: "load", summary: "load a model as generate does: PATH (folder or single .safetensors file) [--vae PATH] [--tokenizer DIR]; time, peak RSS",
          options: ["vae", "tokenizer"], flags: [], run: runLoadBench),
    Suite(name: "image-diff", summary: "A.png B.png [--max-mean L] [--equal]: mean and largest difference in 8-bit levels",
          options: ["max-mean"], flags: ["equal"], run: runImageDiff),
]

let usage = "usage: bench <suite> [options]\n\n"
    + suites.map { "  \($0.name.padding(toLength: 10, withPad: " ", startingAt: 0)) \($0.summary)" }.joined(separator: "\n")

func run(_ arguments: [String]) throws {
    guard let name = arguments.first else { throw CommandLineError.usage("no suite\n" + usage) }
    if name == "--help" || name == "-h" { return print(usage) }
    guard let suite = suites.first(where: { $0.name == name }) else {
        throw CommandLineError.usage("unknown suite '\(name)'; suites: \(suites.map(\.name).joined(separator: ", "))")
    }
    let parsed = try ParsedArguments(Array(arguments.dropFirst()), options: suite.options, flagNames: suite.flags)
    if parsed.has("help") { return print(usage) }
    try suite.run(BenchArguments(parsed: parsed))
}

exit(runCommand("bench") { try run(Array(CommandLine.arguments.dropFirst())) })
