"""Writes tiny random-weight CLIPTextModels and their golden outputs for the Swift parity tests.

Usage (from the repository root):
    /root/refenv/bin/python Tests/Reference/make_clip_goldens.py

Outputs under Tests/CLIPTextTests/Fixtures/:
    clip_sd1_quick_gelu/   config.json + model.safetensors as an SD-1.x checkpoint stores them: keys with the
                           `text_model.` prefix and the int64 `text_model.embeddings.position_ids` buffer;
                           hidden_act quick_gelu, eos_token_id 2 (pooled output at the largest id), pad = eos.
    clip_sd2_gelu/         config.json + model.safetensors from transformers 5's save_pretrained (no prefix);
                           hidden_act gelu, eos_token_id 999 (pooled output at the first eos), pad id 0.
    each with goldens.safetensors:
        input_ids          [3, 77] float32 (exact small integers)
        hidden_states.K    [3, 77, C] for K = 0 … num_hidden_layers (embeddings, then each layer's output)
        last_hidden_state  [3, 77, C] after the final layer norm
        pooler_output      [3, C]
        grad.<name>        (clip_sd1_quick_gelu only) gradient of mean(last_hidden_state²) for every parameter,
                           named without the `text_model.` prefix
"""
import json
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "CLIPTextTests", "Fixtures")
VOCAB, BOS, EOS, LENGTH = 1000, 998, 999, 77


def prompts(pad_id, generator):
    """Three BOS … EOS pad… sequences of lengths 5, 30 and 77 (the last one is all tokens)."""
    rows = []
    for n in (3, 28, LENGTH - 2):
        body = torch.randint(1, BOS, (n,), generator=generator).tolist()
        row = [BOS] + body + [EOS]
        rows.append(row + [pad_id] * (LENGTH - len(row)))
    return torch.tensor(rows, dtype=torch.long)


def perturb(model, generator):
    """Random weights with a realistic scale, including LayerNorm gains and all biases."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=generator))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))


def build(name, hidden, act, eos_token_id, pad_id, sd1_layout, seed, with_gradients=False):
    generator = torch.Generator().manual_seed(seed)
    config = CLIPTextConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden, projection_dim=hidden,
                            num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=LENGTH,
                            hidden_act=act, layer_norm_eps=1e-5, bos_token_id=BOS, eos_token_id=eos_token_id,
                            pad_token_id=pad_id)
    model = CLIPTextModel(config).eval()
    perturb(model, generator)
    out_dir = os.path.join(ROOT, name)
    model.save_pretrained(out_dir)
    weights = os.path.join(out_dir, "model.safetensors")
    if sd1_layout:
        state = load_file(weights)
        state = {"text_model." + k: v for k, v in state.items()}
        state["text_model.embeddings.position_ids"] = torch.arange(LENGTH, dtype=torch.long)[None]
        save_file(state, weights, metadata={"format": "pt"})
        # Reload through transformers to check that the SD-1 layout loads into the same model.
        reloaded = CLIPTextModel.from_pretrained(out_dir).eval()
        for (a, pa), (b, pb) in zip(model.named_parameters(), reloaded.named_parameters()):
            assert a == b and torch.equal(pa, pb), a

    ids = prompts(pad_id, generator)
    out = model(input_ids=ids, output_hidden_states=True)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    goldens = {"input_ids": ids.float(), "last_hidden_state": out.last_hidden_state,
               "pooler_output": out.pooler_output}
    for k, h in enumerate(out.hidden_states):
        goldens[f"hidden_states.{k}"] = h
    if with_gradients:
        (out.last_hidden_state ** 2).mean().backward()
        for pname, p in model.named_parameters():
            goldens["grad." + pname] = p.grad
    goldens = {k: v.detach() for k, v in goldens.items()}
    save_file({k: v.contiguous() for k, v in goldens.items()}, os.path.join(out_dir, "goldens.safetensors"))
    print(name, "keys:", len(load_file(weights)), "max|last|:", goldens["last_hidden_state"].abs().max().item(),
          "max|h_L|:", goldens[f"hidden_states.{config.num_hidden_layers}"].abs().max().item())


def main():
    build("clip_sd1_quick_gelu", hidden=32, act="quick_gelu", eos_token_id=2, pad_id=EOS, sd1_layout=True, seed=1,
          with_gradients=True)
    build("clip_sd2_gelu", hidden=64, act="gelu", eos_token_id=EOS, pad_id=0, sd1_layout=False, seed=2)


if __name__ == "__main__":
    main()
