"""Golden token ids for the toy tokenizer files (Tests/BaseModelTests/Fixtures/toy_tokenizer, written by
BPETrainer / `train-base`), computed by transformers' CLIPTokenizer: shows the files are CLIP-format.

    /root/refenv/bin/python Tests/Reference/toy_tokenizer.py
"""
import json
import pathlib

from transformers import CLIPTokenizer

root = pathlib.Path(__file__).resolve().parent.parent / "BaseModelTests" / "Fixtures"
tokenizer = CLIPTokenizer.from_pretrained(str(root / "toy_tokenizer"))
prompts = [
    "a photo of a brown dog on the beach",
    "a photo of sks dog in the snow",
    "A Red car, at NIGHT!",
    "an orange flower in a room, watercolor style",
    "",
    "zebra 42 qwerty",
]
out = []
for p in prompts:
    ids = tokenizer(p, padding="max_length", max_length=tokenizer.model_max_length, truncation=True).input_ids
    out.append({"prompt": p, "ids": ids})
(root / "toy_tokenizer_ids.json").write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(out)} prompts, model_max_length {tokenizer.model_max_length}, vocab {len(tokenizer)}")
