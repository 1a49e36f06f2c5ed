"""Writes the JPEG / WebP / PNG fixtures of PNGImageTests' ImageFormatTests and the pixels Pillow decodes.

Run from the repository root, after make_png_fixtures.py (the PNG cases reuse its depth/ files):
    /root/refenv/bin/python Tests/Reference/make_image_format_fixtures.py
(Pillow 13.0.0 with its bundled libjpeg-turbo and libwebp 1.6.0). Outputs (committed,
Tests/PNGImageTests/Fixtures/formats/):
  <case>.jpg / .webp / .png    the files (37x23 unless noted; small, quality 90)
  <case>.rgb                   what Pillow gives for them as diffusers' load_image reads a picture:
                               Image.open -> ImageOps.exif_transpose -> RGB, except that transparency is
                               composited on white instead of dropped (the project's rule, PNG.swift):
                               v = (c*a + 255*(255 - a) + 127) // 255 on Pillow's RGBA
  manifest.json                {case: {file, width, height, max_diff, note}}: the decoded size (after the
                               orientation) and the largest difference per sample the test allows
  hostile/<case>.jpg|.webp     damaged files that must fail with a one-line error; hostile.json names the
                               kind of error each must give (truncated, corrupt, tooLarge, unsupported)
The hostile files also seed the fuzz corpus (Fuzz/run.sh image copies every fixture).

Cases:
  jpeg_420 / jpeg_422 / jpeg_444  baseline YCbCr, chroma subsampling 4:2:0 / 4:2:2 / 4:4:4
  jpeg_progressive                progressive 4:2:0
  jpeg_gray                       one component
  jpeg_cmyk                       CMYK as Pillow writes it: an Adobe APP14 marker, inverted samples
  jpeg_cmyk_plain                 the same scan data without the APP14 marker: samples not inverted. Pillow
                                  always assumes Adobe's polarity; the project inverts only Adobe-marked files
                                  (as browsers do), so its golden is Pillow's CMYK->RGB of the un-inverted samples
  jpeg_orient_<1..8>              EXIF orientation 1..8 (APP1, little-endian TIFF as Pillow writes it)
  jpeg_orient_6_motorola          orientation 6 in a big-endian ("MM") EXIF block written by hand
  jpeg_orient_xmp_8               no EXIF, an XMP packet with tiff:Orientation="8" (Pillow's getexif reads it)
  webp_lossy                      lossy RGB
  webp_lossless_alpha             lossless RGBA (alpha 0..255)
  webp_lossy_alpha                lossy RGB + lossless-compressed ALPH chunk
  webp_orient_6                   lossy with an EXIF chunk, orientation 6
  png_<depth fixture>             Pillow's decode of some of make_png_fixtures.py's depth/ files (13x7): 8-bit
                                  ones exact; 16-bit ones within 1 (Pillow keeps the high byte, the project
                                  rounds: v = (v16*255 + 32767) // 65535, and composites at 16 bits)
  png_orient_8                    an RGB PNG with an eXIf chunk, orientation 8
"""
import io
import json
import os
import struct

import numpy as np
from PIL import Image, ImageOps, features

root = os.path.join(os.path.dirname(__file__), "..", "PNGImageTests", "Fixtures")
out_dir = os.path.join(root, "formats")
hostile_dir = os.path.join(out_dir, "hostile")
os.makedirs(hostile_dir, exist_ok=True)
assert features.check("libjpeg_turbo"), "Pillow must be built with libjpeg-turbo"

W, H = 37, 23
manifest = {}


def base_picture():
    """Smooth gradients, a sharp checker and a marked top-left corner, so any flip or rotation shows."""
    y, x = np.mgrid[0:H, 0:W]
    r = (x * 255 // (W - 1)).astype(np.uint8)
    g = (y * 255 // (H - 1)).astype(np.uint8)
    b = np.where(((x // 4) + (y // 3)) % 2 == 0, 40, 220).astype(np.uint8)
    px = np.stack([r, g, b], axis=-1)
    px[0:5, 0:7] = (255, 30, 30)
    px[H - 3:H, W - 9:W] = (20, 20, 240)
    return Image.fromarray(px, "RGB")


def rgba_picture():
    im = base_picture().convert("RGBA")
    a = np.array(im)
    yy, xx = np.mgrid[0:H, 0:W]
    a[..., 3] = np.clip((xx * 7 + yy * 5) % 300, 0, 255).astype(np.uint8)
    a[0:4, :, 3] = 0          # fully transparent rows
    a[:, W - 3:, 3] = 255     # opaque columns
    return Image.fromarray(a, "RGBA")


def pillow_pixels(path):
    """What the project's loader must give: diffusers' load_image steps, transparency on white."""
    im = ImageOps.exif_transpose(Image.open(path))
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        raise ValueError("16-bit gray is handled by the caller")
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        a = np.array(im.convert("RGBA")).astype(np.int64)
        rgb = (a[..., :3] * a[..., 3:4] + 255 * (255 - a[..., 3:4]) + 127) // 255
        return rgb.astype(np.uint8)
    return np.array(im.convert("RGB"))


def record(name, filename, pixels, max_diff=0, note=""):
    h, w = pixels.shape[:2]
    with open(os.path.join(out_dir, name + ".rgb"), "wb") as f:
        f.write(pixels.astype(np.uint8).tobytes())
    manifest[name] = {"file": filename, "width": w, "height": h, "max_diff": max_diff, "note": note}


def save_case(name, ext, data, **kw):
    filename = name + "." + ext
    path = os.path.join(out_dir, filename)
    with open(path, "wb") as f:
        f.write(data)
    record(name, filename, pillow_pixels(path), **kw)
    return path


def encoded(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def exif_bytes(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def insert_after_soi(jpeg, segment):
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + segment + jpeg[2:]


def app1(payload):
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def strip_segment(jpeg, marker):
    """Removes every segment with the given marker byte before the first SOS."""
    out, i = bytearray(jpeg[:2]), 2
    while i < len(jpeg):
        assert jpeg[i] == 0xFF
        m = jpeg[i + 1]
        if m == 0xDA:
            out += jpeg[i:]
            break
        n = struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        if m != marker:
            out += jpeg[i:i + 2 + n]
        i += 2 + n
    return bytes(out)


pic = base_picture()

# MARK: JPEG
save_case("jpeg_420", "jpg", encoded(pic, "JPEG", quality=90, subsampling=2))
save_case("jpeg_422", "jpg", encoded(pic, "JPEG", quality=90, subsampling=1))
save_case("jpeg_444", "jpg", encoded(pic, "JPEG", quality=90, subsampling=0))
save_case("jpeg_progressive", "jpg", encoded(pic, "JPEG", quality=90, progressive=True))
save_case("jpeg_gray", "jpg", encoded(pic.convert("L"), "JPEG", quality=90))
cmyk = encoded(pic.convert("CMYK"), "JPEG", quality=90)
assert cmyk[2:4] == b"\xff\xee" and cmyk[6:11] == b"Adobe", "Pillow writes CMYK with an Adobe marker"
save_case("jpeg_cmyk", "jpg", cmyk)
plain = strip_segment(cmyk, 0xEE)
with open(os.path.join(out_dir, "jpeg_cmyk_plain.jpg"), "wb") as f:
    f.write(plain)
samples = 255 - np.array(Image.open(io.BytesIO(plain)))   # Pillow inverted them; the file's own samples
record("jpeg_cmyk_plain", "jpeg_cmyk_plain.jpg", np.array(Image.fromarray(samples.astype(np.uint8), "CMYK").convert("RGB")),
       note="no Adobe marker: samples as stored (Pillow would invert them)")
for n in range(1, 9):
    save_case(f"jpeg_orient_{n}", "jpg", encoded(pic, "JPEG", quality=90, exif=exif_bytes(n)))
motorola = b"Exif\0\0MM\0\x2a\0\0\0\x08" + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + b"\0\0\0\0"
save_case("jpeg_orient_6_motorola", "jpg", insert_after_soi(encoded(pic, "JPEG", quality=90), app1(motorola)))
xmp = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="8"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
save_case("jpeg_orient_xmp_8", "jpg",
          insert_after_soi(encoded(pic, "JPEG", quality=90), app1(b"http://ns.adobe.com/xap/1.0/\0" + xmp)))

# MARK: WebP
save_case("webp_lossy", "webp", encoded(pic, "WEBP", quality=90))
save_case("webp_lossless_alpha", "webp", encoded(rgba_picture(), "WEBP", lossless=True, exact=True))
save_case("webp_lossy_alpha", "webp", encoded(rgba_picture(), "WEBP", quality=90))
save_case("webp_orient_6", "webp", encoded(pic, "WEBP", quality=90, exif=exif_bytes(6)))

# MARK: PNG (Pillow's reading of make_png_fixtures.py's files)
depth = os.path.join(root, "depth")
for case in ["gray1", "gray8_trns", "rgb8_trns", "palette4_trns", "palette8_trns", "gray_alpha8", "rgba8",
             "rgb16", "rgba16", "gray_alpha16", "gray16"]:
    path = os.path.join(depth, case + ".png")
    sixteen = case.endswith("16")
    im = Image.open(path)
    if im.mode.startswith("I"):   # 16-bit gray: Pillow keeps all 16 bits; reduce them to 8 as the project does
        v = np.array(im).astype(np.int64)
        px = np.repeat(((v * 255 + 32767) // 65535)[..., None], 3, axis=-1).astype(np.uint8)
        note = "Pillow's 16-bit samples, rounded to 8 bits"
    else:
        px = pillow_pixels(path)
        note = "Pillow keeps the high byte of 16-bit samples" if sixteen else ""
    record("png_" + case, "../depth/" + case + ".png", px, max_diff=1 if sixteen and not im.mode.startswith("I") else 0,
           note=note)
save_case("png_orient_8", "png", encoded(pic, "PNG", exif=exif_bytes(8)))

with open(os.path.join(out_dir, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
    f.write("\n")

# MARK: Hostile files
hostile = {}


def write_hostile(name, data, kind):
    with open(os.path.join(hostile_dir, name), "wb") as f:
        f.write(data)
    hostile[name] = kind


jpeg = encoded(pic, "JPEG", quality=90)
prog = encoded(pic, "JPEG", quality=90, progressive=True)
write_hostile("jpeg_truncated_half.jpg", jpeg[:len(jpeg) // 2], "truncated")
write_hostile("jpeg_no_eoi.jpg", jpeg[:-2], "truncated")
write_hostile("jpeg_progressive_truncated.jpg", prog[:len(prog) * 2 // 3], "truncated")
write_hostile("jpeg_signature_only.jpg", b"\xff\xd8\xff", "truncated")
sof = jpeg.index(b"\xff\xc0")
huge = bytearray(jpeg)
huge[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)   # height, width
write_hostile("jpeg_huge_header.jpg", bytes(huge), "tooLarge")
bad_len = bytearray(jpeg)
dqt = jpeg.index(b"\xff\xdb")
bad_len[dqt + 2:dqt + 4] = b"\x00\x01"    # a segment length below 2
write_hostile("jpeg_bad_marker_length.jpg", bytes(bad_len), "corrupt")
write_hostile("jpeg_segment_past_end.jpg", b"\xff\xd8\xff\xe0" + bytes(range(7, 250)), "truncated")
zero = bytearray(jpeg)
zero[sof + 7:sof + 9] = b"\x00\x00"       # width 0
write_hostile("jpeg_zero_width.jpg", bytes(zero), "corrupt")
two = bytearray(jpeg)
two[sof + 9] = 2                           # two components claimed
write_hostile("jpeg_two_components.jpg", bytes(two), "corrupt")
twelve = bytearray(jpeg)
twelve[sof + 4] = 12                       # 12-bit samples: libjpeg.so.62 reads 8-bit JPEGs only
write_hostile("jpeg_12bit.jpg", bytes(twelve), "unsupported")
# A progressive file whose first scan repeats 600 times: libjpeg only warns about the bogus progression, so
# without a limit every scan would be decoded.
sos = prog.index(b"\xff\xda")
nxt = prog.index(b"\xff\xda", sos + 2)
write_hostile("jpeg_many_scans.jpg", prog[:nxt] + prog[sos:nxt] * 600 + prog[nxt:], "corrupt")

webp = encoded(pic, "WEBP", quality=90)
webp_ll = encoded(rgba_picture(), "WEBP", lossless=True)
write_hostile("webp_truncated_half.webp", webp[:len(webp) // 2], "truncated")
write_hostile("webp_lossless_truncated.webp", webp_ll[:len(webp_ll) * 2 // 3], "truncated")
write_hostile("webp_header_only.webp", webp[:12], "truncated")
start = webp.index(b"\x9d\x01\x2a")      # the VP8 key frame's start code
write_hostile("webp_bad_start_code.webp", webp[:start] + b"\x9d\x01\x2b" + webp[start + 3:], "corrupt")
garbage = bytearray(webp)
for i in range(40, len(garbage) - 4):
    garbage[i] = (garbage[i] * 31 + 7) & 0xFF
write_hostile("webp_partition_garbage.webp", bytes(garbage), "truncated")   # libwebp: partition sizes past the end
big = bytearray(encoded(pic, "WEBP", quality=90, exif=exif_bytes(1)))    # VP8X: canvas size in the header
assert big[12:16] == b"VP8X"
big[24:30] = (16383).to_bytes(3, "little") + (16383).to_bytes(3, "little")
write_hostile("webp_huge_canvas.webp", bytes(big), "corrupt")
frames = [base_picture(), base_picture().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
anim = io.BytesIO()
frames[0].save(anim, "WEBP", save_all=True, append_images=frames[1:], duration=100, quality=50)
write_hostile("webp_animated.webp", anim.getvalue(), "unsupported")

with open(os.path.join(out_dir, "hostile.json"), "w") as f:
    json.dump(hostile, f, indent=1, sort_keys=True)
    f.write("\n")
total = sum(os.path.getsize(os.path.join(d, n)) for d in (out_dir, hostile_dir) for n in os.listdir(d)
            if os.path.isfile(os.path.join(d, n)))
print(f"ok: {len(manifest)} cases, {len(hostile)} hostile files, {total} bytes")
