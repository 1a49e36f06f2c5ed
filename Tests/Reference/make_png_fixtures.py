"""Writes the PNG fixtures of PNGImageTests.

Run: /root/refenv/bin/python Tests/Reference/make_png_fixtures.py
Outputs (committed, Tests/PNGImageTests/Fixtures/):
  depth/<case>.png + <case>.rgb   every colour type and bit depth (Pillow cannot write them all, so a
                                  tiny PNG writer with zlib below does, Adam7 interlacing included);
                                  .rgb = the expected 8-bit RGB after alpha composited on white
  text_pil.png                    tEXt, zTXt and iTXt chunks written by Pillow
  bad_crc.png, huge_header.png    a corrupted IDAT CRC; an IHDR claiming 100000x100000
  resize/src.png, resize/<filter>_<w>x<h>.png   Pillow Image.resize results
"""
import os
import random
import struct
import zlib

from PIL import Image, PngImagePlugin

root = os.path.join(os.path.dirname(__file__), "..", "PNGImageTests", "Fixtures")
os.makedirs(os.path.join(root, "depth"), exist_ok=True)
os.makedirs(os.path.join(root, "resize"), exist_ok=True)
rng = random.Random(1234)
W, H = 13, 7


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if depth == 8:
        return bytes(samples)
    out, acc, bits = bytearray(), 0, 0
    for s in samples:
        acc = (acc << depth) | s
        bits += depth
        if bits == 8:
            out.append(acc)
            acc, bits = 0, 0
    if bits:
        out.append(acc << (8 - bits))
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(pixels, depth, color, plte=None, trns=None, interlace=False, texts=()):
    """pixels[y][x] = tuple of samples."""
    def rows(xs, ys):
        return b"".join(b"\x00" + pack_row([s for x in xs for s in pixels[y][x]], depth) for y in ys)
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            xs, ys = range(x0, W, dx), range(y0, H, dy)
            if len(xs) and len(ys):
                raw += rows(xs, ys)
    else:
        raw = rows(range(W), range(H))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, depth, color, 0, 0, int(interlace)))
    if plte is not None:
        out += chunk(b"PLTE", b"".join(bytes(c) for c in plte))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    for k, v in texts:
        out += chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1"))
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def over_white8(c, a):
    return (c * a + 255 * (255 - a) + 127) // 255


def over_white16(c, a):
    v16 = (c * a + 65535 * (65535 - a) + 32767) // 65535
    return (v16 * 255 + 32767) // 65535


def save(name, data, expected):
    with open(os.path.join(root, "depth", name + ".png"), "wb") as f:
        f.write(data)
    with open(os.path.join(root, "depth", name + ".rgb"), "wb") as f:
        f.write(bytes(v for px in expected for v in px))


def grid(channels, maxv):
    return [[tuple(rng.randint(0, maxv) for _ in range(channels)) for _ in range(W)] for _ in range(H)]


def flat(p):
    return [p[y][x] for y in range(H) for x in range(W)]


for interlace in (False, True):
    tag = "_interlaced" if interlace else ""
    for depth in (1, 2, 4, 8, 16):
        g = grid(1, 2**depth - 1)
        scale = 255 // (2**depth - 1) if depth < 16 else None
        exp = [((s * scale,) * 3 if depth < 16 else (over_white16(s, 65535),) * 3) for (s,) in flat(g)]
        save(f"gray{depth}{tag}", png_bytes(g, depth, 0, interlace=interlace), exp)
    for depth in (8, 16):
        maxv = 2**depth - 1
        key = 3 if depth == 8 else 1000
        g = grid(1, maxv)
        g[0][0] = g[2][5] = (key,)
        trns = struct.pack(">H", key)
        f = over_white8 if depth == 8 else over_white16
        exp = [(f(s, 0 if s == key else maxv),) * 3 for (s,) in flat(g)]
        save(f"gray{depth}_trns{tag}", png_bytes(g, depth, 0, trns=trns, interlace=interlace), exp)
        c = grid(3, maxv)
        save(f"rgb{depth}{tag}", png_bytes(c, depth, 2, interlace=interlace),
             [tuple(f(v, maxv) for v in px) for px in flat(c)])
        c[1][1] = (key, key + 1, key + 2)
        c[4][7] = (key, key + 1, key + 2)
        trns = struct.pack(">HHH", key, key + 1, key + 2)
        save(f"rgb{depth}_trns{tag}", png_bytes(c, depth, 2, trns=trns, interlace=interlace),
             [tuple(f(v, 0 if px == (key, key + 1, key + 2) else maxv) for v in px) for px in flat(c)])
        ga = grid(2, maxv)
        save(f"gray_alpha{depth}{tag}", png_bytes(ga, depth, 4, interlace=interlace),
             [(f(g_, a),) * 3 for g_, a in flat(ga)])
        rgba = grid(4, maxv)
        save(f"rgba{depth}{tag}", png_bytes(rgba, depth, 6, interlace=interlace),
             [tuple(f(v, px[3]) for v in px[:3]) for px in flat(rgba)])
    for depth in (1, 2, 4, 8):
        n = 2**depth
        plte = [tuple(rng.randint(0, 255) for _ in range(3)) for _ in range(n)]
        idx = grid(1, n - 1)
        save(f"palette{depth}{tag}", png_bytes(idx, depth, 3, plte=plte, interlace=interlace),
             [plte[i] for (i,) in flat(idx)])
        alphas = [rng.randint(0, 255) for _ in range(max(1, n // 2))]
        exp = [tuple(over_white8(v, alphas[i] if i < len(alphas) else 255) for v in plte[i]) for (i,) in flat(idx)]
        save(f"palette{depth}_trns{tag}", png_bytes(idx, depth, 3, plte=plte, trns=bytes(alphas), interlace=interlace), exp)

# Text chunks written by Pillow: tEXt, zTXt and iTXt (UTF-8).
info = PngImagePlugin.PngInfo()
info.add_text("parameters", "a photo of sks dog\nSteps: 20, Seed: 42")
info.add_text("Compressed", "zipped text " * 20, zip=True)
info.add_itxt("Comment", "ünïcode ✓ 日本語", lang="", tkey="")
Image.new("RGB", (4, 3), (10, 200, 30)).save(os.path.join(root, "text_pil.png"), pnginfo=info)

# A CRC error in IDAT, and a header claiming 100000 x 100000 pixels (valid CRCs, tiny IDAT).
good = png_bytes(grid(3, 255), 8, 2)
i = good.index(b"IDAT")
length = struct.unpack(">I", good[i - 4:i])[0]
crc_at = i + 4 + length
with open(os.path.join(root, "bad_crc.png"), "wb") as f:
    f.write(good[:crc_at] + bytes([good[crc_at] ^ 0xFF]) + good[crc_at + 1:])
huge = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
with open(os.path.join(root, "huge_header.png"), "wb") as f:
    f.write(huge)

# Resize goldens: a smooth picture with sharp edges, resized by Pillow.
src = Image.new("RGB", (61, 47))
px = src.load()
for y in range(47):
    for x in range(61):
        edge = 255 if (x // 7 + y // 5) % 2 else 0
        px[x, y] = ((x * 4 + y) % 256, edge, (x * y) % 256)
src.save(os.path.join(root, "resize", "src.png"))
filters = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}
for name, f in filters.items():
    for w, h in ((23, 17), (30, 47), (90, 70), (61, 20)):
        src.resize((w, h), f).save(os.path.join(root, "resize", f"{name}_{w}x{h}.png"))
print("ok")
