"""Golden JPEG round trips for the judge's JPEG-like degradation (JudgeAugmentation.compress): Pillow's
(libjpeg's) baseline JPEG at several qualities, 4:4:4 (subsampling=0), decoded back to RGB, of a picture both
sides build from the same integer formula (24x16 RGB, see `picture`), written to
Tests/PictureWorldTests/Fixtures/jpeg_goldens.json. libjpeg quantises with the same Annex K tables scaled the
same way, but with an integer DCT, so the Swift float version agrees to about a level on average, far closer
than either is to the input.

Run from the repository root: /root/refenv/bin/python Tests/Reference/make_jpeg_goldens.py (Pillow 13).
"""
import io
import json
import os

import numpy as np
from PIL import Image

W, H = 24, 16
QUALITIES = [20, 50, 90]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "PictureWorldTests", "Fixtures", "jpeg_goldens.json")


def picture():
    y, x, c = np.meshgrid(np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    return ((x * 9 + y * 5 + c * 40 + ((x // 3 + y // 2) % 2) * 60) % 256).astype(np.uint8)


def main():
    base = picture()
    cases = []
    for q in QUALITIES:
        buf = io.BytesIO()
        Image.fromarray(base).save(buf, "JPEG", quality=q, subsampling=0)
        decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        error = np.abs(decoded.astype(float) - base).mean()
        print(f"quality {q}: mean |decoded - input| {error:.2f}")
        cases.append({"quality": q, "pixels": decoded.reshape(-1).tolist()})
    with open(OUT, "w") as f:
        json.dump({"width": W, "height": H, "cases": cases}, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
