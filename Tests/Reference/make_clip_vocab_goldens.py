"""Token ids of transformers' CLIPTokenizer with the CLIP vocabulary that the package embeds
(Sources/Pipeline/Resources/clip-merges-48894.txt.gz), for 200 prompts, SD-1 and SD-2 padding.

Run from the repository root:
    /root/refenv/bin/python Tests/Reference/make_clip_vocab_goldens.py
(transformers 5.23.0). The resource is the first 48,894 merges of open_clip's bpe_simple_vocab_16e6.txt.gz, made by
    pip download --no-deps open-clip-torch   (open_clip_torch-3.3.0-py3-none-any.whl)
    unzip -p open_clip_torch-*.whl open_clip/bpe_simple_vocab_16e6.txt.gz | zcat | head -n 48895 | gzip -9 -n
vocab.json / merges.txt are built here as CLIP's SimpleTokenizer builds its vocabulary (byte symbols, the same with
</w>, merges, <|startoftext|>, <|endoftext|>), i.e. openai/clip-vit-large-patch14's tokenizer files. Writes
Tests/PipelineTests/Fixtures/clip-vocab-goldens.json: {"prompts": [...], "sd1": [[ids]], "sd2": [...],
"pad": {"sd1": 49407, "sd2": 0}}: each row of 77 ids without its trailing pad ids.
"""
import gzip
import json
import os
import random
import tempfile

from transformers import CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RESOURCE = os.path.join(ROOT, "Sources", "Pipeline", "Resources", "clip-merges-48894.txt.gz")
OUT = os.path.join(ROOT, "Tests", "PipelineTests", "Fixtures", "clip-vocab-goldens.json")

FIXED = [
    "a photo of a dog", "a photo of sks dog", "A PHOTO OF A DOG", "", " ", "a  photo   of\ta\ndog",
    "masterpiece, best quality, (ultra-detailed:1.2), 1girl, solo, long hair, looking at viewer",
    "a portrait of an astronaut riding a horse on mars, trending on artstation, 8k, octane render",
    "don't stop, it's what we'd've done, you're they'll I'm", "café naïve façade crème brûlée",
    "Ångström über straße ÉCOLE", "東京の夜景, 美しい", "emoji 🐶🐱 and ✨ sparkles ✨", "1234567890 3.14 1,000,000 2024-01-01",
    "hello!!! what??? ... --- ___ ***", "<|startoftext|>a dog<|endoftext|>", "tom &amp; jerry &lt;3", "<lora:ink:0.8> a house",
    "[[blurry]], {{sharp}}, (((detailed)))", "a photo of a cat " * 30, "Zürich, Kraków, São Paulo, Reykjavík",
    "ﬁne ligature ﬂower", "e\u0301 composed vs é", "tab\tseparated\tvalues", "C'EST LA VIE", "x" * 200,
    "https://example.com/path?q=1&r=2", "user@example.com", "#hashtag @mention $100 50% ^caret ~tilde",
    "a red car, blue sky; green grass: yellow sun", "Ιπποκράτης αλφαβητο", "привет мир", "مرحبا بالعالم",
]
SUBJECTS = ["dog", "cat", "woman", "man", "castle", "forest", "robot", "dragon", "city", "mountain lake", "bowl of ramen",
            "vintage car", "lighthouse", "astronaut", "samurai", "owl", "spaceship", "cottage", "waterfall", "teapot"]
STYLES = ["oil painting", "watercolor", "photograph", "pencil sketch", "3D render", "pixel art", "ukiyo-e print",
          "studio ghibli style", "cinematic lighting", "highly detailed", "bokeh", "sharp focus", "by greg rutkowski",
          "unreal engine 5", "HDR", "4k", "film grain", "low poly", "art nouveau", "isometric"]
PLACES = ["in the snow", "on the beach", "at night", "under the stars", "in a neon city", "in a misty forest",
          "on mars", "in a cozy room", "at sunset", "underwater"]


def prompts():
    rng = random.Random(22)
    out = list(FIXED)
    while len(out) < 200:
        p = f"a {rng.choice(['', 'small ', 'huge ', 'cute ', 'ancient '])}{rng.choice(SUBJECTS)} {rng.choice(PLACES)}"
        p += "".join(", " + rng.choice(STYLES) for _ in range(rng.randint(0, 6)))
        if rng.random() < 0.3:
            p = p.title()
        if rng.random() < 0.2:
            p += f", ({rng.choice(STYLES)}:{rng.choice(['0.8', '1.1', '1.3'])})"
        out.append(p)
    return out


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def main():
    lines = gzip.open(RESOURCE).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:48894 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    texts = prompts()
    goldens = {"prompts": texts, "pad": {}}
    for kind, pad in (("sd1", "<|endoftext|>"), ("sd2", "!")):
        tok = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), pad_token=pad,
                            model_max_length=77)
        ids = tok(texts, padding="max_length", max_length=77, truncation=True).input_ids
        goldens["pad"][kind] = tok.pad_token_id
        rows = []
        for row in ids:
            assert len(row) == 77
            while row and row[-1] == tok.pad_token_id:
                row = row[:-1]
            rows.append(row)
        goldens[kind] = rows
    assert tok("a photo of sks dog").input_ids == [49406, 320, 1125, 539, 48136, 1929, 49407]
    with open(OUT, "w") as f:
        json.dump(goldens, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{len(texts)} prompts, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
