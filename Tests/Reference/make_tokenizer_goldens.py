"""Writes the CLIP tokenizer fixture and its golden ids.

Usage (from the repository root):
    pip download --no-deps open-clip-torch -d /tmp/oc
    unzip -o -j /tmp/oc/open_clip_torch-*.whl 'open_clip/bpe_simple_vocab_16e6.txt.gz' -d /tmp/oc
    /root/refenv/bin/python Tests/Reference/make_tokenizer_goldens.py /tmp/oc/bpe_simple_vocab_16e6.txt.gz

Outputs under Tests/CLIPTextTests/Fixtures/:
    tokenizer/vocab.json, tokenizer/merges.txt, tokenizer/tokenizer_config.json, tokenizer/special_tokens_map.json
        the real CLIP vocabulary (49408 tokens, 48894 merges) in the Hugging Face file layout of SD-1.x
    tokenizer_sd2/tokenizer_config.json, tokenizer_sd2/special_tokens_map.json
        the same with SD-2.x's pad token "!" (used with tokenizer/'s vocab.json and merges.txt)
    tokenizer_goldens.json
        {"prompts": [...], "sd1": [[ids], ...], "sd1_mask": [[...]], "sd2": [[ids], ...]}
        ids from transformers' CLIPTokenizer with padding="max_length", max_length=77, truncation=True,
        once with the SD-1 pad token (<|endoftext|>) and once with the SD-2 pad token (!).
"""
import gzip
import json
import os
import random
import sys
import tempfile

from transformers import CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "CLIPTextTests", "Fixtures")


def bytes_to_unicode():
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_vocabulary(bpe_path, out_dir):
    """Builds vocab.json and merges.txt exactly as CLIP's SimpleTokenizer / openai/clip-vit-* do."""
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(merges) == 48894
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


def write_configs(out_dir, pad_token):
    special = lambda s: {"content": s, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    config = {
        "add_prefix_space": False,
        "bos_token": special("<|startoftext|>"),
        "do_lower_case": True,
        "eos_token": special("<|endoftext|>"),
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": pad_token,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": special("<|endoftext|>"),
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    smap = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(smap, f, indent=2)


HANDWRITTEN = [
    "a photo of sks dog",
    "",
    " ",
    "A Photo Of SKS Dog",
    "a   photo\tof\n\nsks    dog  ",
    "   leading and trailing spaces   ",
    "hello, world!",
    "don't stop believin'",
    "it's the dog's bone, they're here, we've seen, I'm ok, you'll see, he'd go",
    "'s 't 're 've 'm 'll 'd",
    "'super' \"quoted\" `back`",
    "!!!??? ... ,,, ;;; ::: --- ___ +++ === ***",
    "!!'s ?'t",
    "price: $1,234.56 (approx.) 100% 3.14159",
    "2024-01-01 12:30:45 0123456789",
    "x1 y22 z333 4k 8K uhd 1080p",
    "café naïve résumé façade jalapeño Zürich Ångström",
    "cafe\u0301 nai\u0308ve",  # decomposed accents: NFC composes them
    "ÀÉÎÕÜ àéîõü ÇÑ ß ẞ",
    "İstanbul ΟΔΟΣ Σίσυφος",
    "北京的猫 東京タワー 서울 풍경",
    "一只可爱的小狗在草地上玩耍",
    "日本語のテキストとEnglish mixed",
    "emoji 🐶🐱🐦 🏠🌳🚗 🌸⚽",
    "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽",
    "a dog 🐕 on the beach 🏖️, sunset 🌅",
    "ﬁne ligature ① ② ½ ² ³ Ⅻ",
    "Привет мир, собака на снегу",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "ภาษาไทย",
    "zero\u200bwidth\u200cjoiner\u200d",
    "non\u00a0breaking\u2003em\u3000ideographic",
    "tab\tnewline\ncarriage\rreturn",
    "masterpiece, best quality, ultra-detailed, 8k, (highly detailed:1.2), [sharp focus]",
    "a painting in the style of van gogh, trending on artstation, octane render",
    "<|startoftext|>a photo<|endoftext|>",
    "a <|endoftext|> b",
    "<|STARTOFTEXT|> a",
    "A <|ENDOFTEXT|> b",
    "x<|StartOfText|>y",
    "a  <|startoftext|>",
    "HELLO! hi!!",
    "\uff28\uff29!",
    "email@example.com https://example.com/path?q=1&x=2#frag",
    "C++ C# F# .NET node.js 3D",
    "hashtag #sunset @user",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "~`!@#$%^&*()_+-={}[]|\\:;\"'<>,.?/",
    "\u00bf\u00a1 \u00ab guillemets \u00bb \u201csmart quotes\u201d \u2018single\u2019 \u2014 dash \u2026",
    "ɐ ʃ ŋ θ ð æ ø å œ",
    "\u0130 \u1e9e \u01c5 \u1f88",
    "\u1100\u1161\u11a8 \u1112\u1161\u11ab",  # conjoining jamo: NFC composes Hangul syllables
    "next\u0085line\u2028sep\u2029para\u1680ogham",
    "IT'S WE'LL THEY'RE I'VE I'M HE'D DON'T",
    "''s '''t 's' rock'n'roll o'clock",
    "trailing apostrophe' and 'leading",
    "arabic digits \u0663\u0664\u0665 devanagari \u0967\u0968 fullwidth \uff11\uff12\uff13 ½¼",
    "fullwidth \uff21\uff22\uff23 letters and \uff01\uff1f punctuation",
    "\u0301\u0302 leading combining marks !\u0301",
    "x" * 300,
    ", ".join(["dog"] * 100),
]

WORDS = (
    "a an the photo picture painting drawing portrait of by in on at with and or dog cat bird house tree car flower ball "
    "sks brown white black red green blue yellow golden fluffy small large tiny huge beach snow grass night room forest "
    "city mountain river sunset sunrise studio lighting cinematic detailed realistic style oil watercolor sketch anime "
    "digital art 4k 8k hdr masterpiece best quality highly intricate sharp focus bokeh wide angle close-up macro".split()
)
EXTRAS = [",", ".", "!", "?", ";", ":", "(", ")", "[", "]", "{", "}", "'s", "'", "\"", "-", "--", "...", "&", "#", "1", "42",
          "2023", "3.5", "1:1", "café", "naïve", "Ökonomie", "猫", "犬が好き", "🐶", "🌟✨", "🏔️", "ÉTÉ", "Ωmega", "×",
          "  ", "\t", "\n", "DOG", "Cat", "sKs", "x2", "v1.5", "_", "__init__", "日本", "한국어", "ﬂ", "№5"]


def generated_prompts(count, seed):
    rng = random.Random(seed)
    prompts = []
    for i in range(count):
        n = rng.choice([1, 3, 6, 10, 20, 40, 90]) if i % 5 else rng.randint(60, 120)
        parts = []
        for _ in range(n):
            parts.append(rng.choice(EXTRAS) if rng.random() < 0.3 else rng.choice(WORDS))
        sep = rng.choice([" ", " ", " ", "", "  ", ", "])
        prompts.append(sep.join(parts))
    return prompts


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    tok_dir = os.path.join(ROOT, "tokenizer")
    write_vocabulary(sys.argv[1], tok_dir)
    write_configs(tok_dir, "<|endoftext|>")
    sd1 = CLIPTokenizer.from_pretrained(tok_dir)
    sd2_config_dir = os.path.join(ROOT, "tokenizer_sd2")
    os.makedirs(sd2_config_dir, exist_ok=True)
    write_configs(sd2_config_dir, "!")
    with tempfile.TemporaryDirectory() as sd2_dir:
        for name in ("vocab.json", "merges.txt"):
            os.symlink(os.path.join(tok_dir, name), os.path.join(sd2_dir, name))
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            os.symlink(os.path.join(sd2_config_dir, name), os.path.join(sd2_dir, name))
        sd2 = CLIPTokenizer.from_pretrained(sd2_dir)

    prompts = HANDWRITTEN + generated_prompts(220, seed=1234)
    enc = lambda t: t(prompts, padding="max_length", max_length=77, truncation=True)
    e1, e2 = enc(sd1), enc(sd2)
    assert e1["input_ids"][0][:7] == [49406, 320, 1125, 539, 48136, 1929, 49407], e1["input_ids"][0][:7]
    assert sd2.pad_token_id == 0 and sd1.pad_token_id == 49407
    unpadded = sd1(prompts)["input_ids"]  # no truncation, no padding: full-length ids
    goldens = {
        "source": "transformers " + __import__("transformers").__version__ + " CLIPTokenizer",
        "prompts": prompts,
        "sd1": e1["input_ids"],
        "sd1_mask": e1["attention_mask"],
        "sd2": e2["input_ids"],
        "full": unpadded,
    }
    with open(os.path.join(ROOT, "tokenizer_goldens.json"), "w", encoding="utf-8") as f:
        json.dump(goldens, f, ensure_ascii=False)
    long = sum(len(u) > 77 for u in unpadded)
    print(f"{len(prompts)} prompts, {long} longer than 77 tokens")


if __name__ == "__main__":
    main()
