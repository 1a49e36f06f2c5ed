"""Golden SSIM values for PictureMeasures.ssim: scikit-image's structural_similarity(a, b, channel_axis=2,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255) on pictures both sides build
from the same integer formulas (40x32 RGB, see `pictures`), written to
Tests/PictureWorldTests/Fixtures/ssim_goldens.json.

Run from the repository root: /root/refenv/bin/python Tests/Reference/make_ssim_goldens.py (scikit-image 0.26).
"""
import json
import os

import numpy as np
from skimage.metrics import structural_similarity

W, H = 40, 32
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "PictureWorldTests", "Fixtures", "ssim_goldens.json")


def pictures():
    y, x, c = np.meshgrid(np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    base = (x * 7 + y * 13 + c * 29 + (x * y) % 17) % 256
    stripes = np.clip(base + ((x // 4 + y // 3) % 2) * 40, 0, 255)
    noisy = np.clip(base + ((x * 31 + y * 17 + c * 11) % 23 - 11) * 3, 0, 255)
    inverse = 255 - base
    flat = np.full_like(base, 128)
    return {"base": base, "stripes": stripes, "noisy": noisy, "inverse": inverse, "flat": flat}


def main():
    p = {k: v.astype(np.uint8) for k, v in pictures().items()}
    pairs = [("base", "base"), ("base", "stripes"), ("base", "noisy"), ("base", "inverse"), ("base", "flat"),
             ("noisy", "stripes")]
    cases = []
    for a, b in pairs:
        s = structural_similarity(p[a], p[b], channel_axis=2, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=255)
        cases.append({"a": a, "b": b, "ssim": float(s)})
        print(f"{a} vs {b}: {s:.6f}")
    with open(OUT, "w") as f:
        json.dump({"width": W, "height": H, "cases": cases}, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
