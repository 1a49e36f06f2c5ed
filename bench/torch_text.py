#!/usr/bin/env python3
"""PyTorch timing of the `bench text` case: transformers' CLIPTextModel forward, 77 tokens, batch 1,
random weights, CPU, 2 threads, torch.no_grad().

    /root/refenv/bin/python bench/torch_text.py --config clip-l --rounds 10 [--save DIR]

Config names are shared with Sources/bench/TextBench.swift.
"""
import argparse
import resource
import statistics
import time

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

CONFIGS = {
    "clip-l": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   hidden_act="quick_gelu", eos_token_id=2),
    "clip-h": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                   hidden_act="gelu"),
    "tiny": dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="clip-l", choices=sorted(CONFIGS))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--save", metavar="DIR", help="save the model (save_pretrained) and goldens.safetensors "
                        "with last_hidden_state for the bench ids, for `bench text --weights DIR`")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    config = CLIPTextConfig(**CONFIGS[args.config])
    model = CLIPTextModel(config).eval()
    v, n = config.vocab_size, config.max_position_embeddings
    ids = torch.tensor([[v - 2] + [(i * 7919) % (v - 2) for i in range(1, n - 1)] + [v - 1]])
    with torch.no_grad():
        if args.save:
            model.save_pretrained(args.save)
            save_file({"last_hidden_state": model(input_ids=ids).last_hidden_state.contiguous()},
                      f"{args.save}/goldens.safetensors")
        model(input_ids=ids)
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            model(input_ids=ids)
            times.append(time.perf_counter() - t0)
    l, d, i = n, config.hidden_size, config.intermediate_size
    flops = config.num_hidden_layers * (8 * l * d * d + 4 * l * d * i + 4 * l * l * d)
    t = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"text {args.config} ({n} tokens): {t:.4f} s median of {len(times)}, {flops / t * 1e-9:.1f} GFLOP/s "
          f"({flops * 1e-9:.2f} GFLOP), peak RSS {rss / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
