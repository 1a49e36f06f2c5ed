"""Golden bucket tables and bucket choices for Sources/Training/Buckets.swift (Tests/TrainingTests/BucketTests.swift).

kohya's sd-scripts cannot be pip-installed here, so this script restates its two bucket rules from the
published source (library/model_util.py make_bucket_resolutions, library/train_util.py
BucketManager.select_bucket and round_to_steps) in plain Python with numpy's argmin, and prints the results
as JSON; BucketTests.swift holds the printed values.

  table: the square of the largest multiple of the stride within max_w*max_h, then for each width from
         min_side to max_side in stride steps the tallest multiple-of-stride height within the area (capped
         at max_side), kept with its transpose when the height is at least min_side; sorted.
  choice (upscaling allowed): the image's own size if it is in the table, else the first size with the
         smallest |aspect error|; the image scaled so that it covers it (rounded half up).
  choice (no upscale): images above the area shrink keeping their aspect, one side rounded to the stride
         (whichever rounding keeps the aspect better); the bucket is the size rounded down to the stride.

Run: /root/refenv/bin/python Tests/Reference/make_bucket_goldens.py
"""
import json
import math

import numpy as np


def table(max_w, max_h, min_side, max_side, step):
    area = max_w * max_h
    sizes = {(int(math.sqrt(area) // step) * step,) * 2}
    w = min_side
    while w <= max_side:
        h = min(max_side, int((area // w) // step) * step)
        if h >= min_side:
            sizes.add((w, h))
            sizes.add((h, w))
        w += step
    return sorted(sizes)


def to_step(x, step):
    n = int(x + 0.5)
    return n - n % step


def choose(sizes, area, step, no_upscale, w, h):
    ar = w / h
    if not no_upscale:
        bucket = (w, h)
        if bucket not in set(sizes):
            errors = np.abs(np.array([a / b for a, b in sizes]) - ar)
            bucket = sizes[int(errors.argmin())]
        scale = bucket[1] / h if ar > bucket[0] / bucket[1] else bucket[0] / w
        resized = (int(w * scale + 0.5), int(h * scale + 0.5))
    else:
        if w * h > area:
            rw = math.sqrt(area * ar)
            rh = area / rw
            bw = to_step(rw, step)
            bh_w = to_step(bw / ar, step)
            bh = to_step(rh, step)
            bw_h = to_step(bh * ar, step)
            if abs(bw / bh_w - ar) < abs(bw_h / bh - ar):
                resized = (bw, int(bw / ar + 0.5))
            else:
                resized = (int(bh * ar + 0.5), bh)
        else:
            resized = (w, h)
        bucket = (resized[0] - resized[0] % step, resized[1] - resized[1] % step)
        if min(bucket) == 0:
            return None  # kohya divides by zero here; BucketTable's caller refuses such an image
    return {"bucket": list(bucket), "resized": list(resized), "error": bucket[0] / bucket[1] - ar}


SETTINGS = [(512, 256, 1024, 64), (768, 256, 1024, 64), (1024, 256, 2048, 64), (64, 32, 128, 4)]
IMAGES = [(4032, 3024), (3024, 4032), (1920, 1080), (512, 512), (640, 448), (333, 1000), (100, 80), (64, 48), (48, 64), (40, 90)]

out = []
for res, lo, hi, step in SETTINGS:
    sizes = table(res, res, lo, hi, step)
    out.append({
        "resolution": res, "min": lo, "max": hi, "stride": step, "sizes": [list(s) for s in sizes],
        "choices": [choose(sizes, res * res, step, False, w, h) for w, h in IMAGES],
        "no_upscale": [choose(sizes, res * res, step, True, w, h) for w, h in IMAGES],
    })
print(json.dumps({"images": [list(i) for i in IMAGES], "cases": out}))
