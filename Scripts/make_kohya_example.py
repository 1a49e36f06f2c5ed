"""Writes the pictures of examples/kohya/: four of the checkered-coat dog renders in images/ as the files a
photo folder really holds, in kohya's layout (`img/10_sks dog/`: 10 repeats of the concept "sks dog").

Run from the repository root (Pillow, e.g. /root/refenv/bin/python Scripts/make_kohya_example.py):
  dog_meadow.jpg          images/sks_dog_0.png as a phone stores a photo taken sideways: the pixels rotated a
                          quarter turn counter-clockwise and EXIF orientation 6, so only a reader that applies the
                          orientation (diffusers' load_image, ImageFile) shows the dog upright
  dog_beach.webp          images/sks_dog_1.png as a lossy WebP (quality 90), with dog_beach.caption
                          ("a photo of sks dog")
  dog_room_portrait.png   images/sks_dog_2.png cropped to a portrait 88x128 around the dog
  dog_city_landscape.png  images/sks_dog_3.png cropped to a landscape 128x80 around the dog
The output is the same on every run.
"""
import os

import numpy as np
from PIL import Image, ImageOps

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out = os.path.join(root, "examples", "kohya", "img", "10_sks dog")
os.makedirs(out, exist_ok=True)


def source(i):
    return Image.open(os.path.join(root, "images", f"sks_dog_{i}.png")).convert("RGB")


def save(im, name, **kw):
    path = os.path.join(out, name)
    temporary = os.path.join(out, "." + name + ".tmp")
    im.save(temporary, **kw)
    os.replace(temporary, path)
    return path


# A photo taken with the phone turned: stored sideways, EXIF orientation 6 ("rotate 90° clockwise to view").
meadow = source(0)
exif = Image.Exif()
exif[0x0112] = 6
path = save(meadow.transpose(Image.Transpose.ROTATE_90), "dog_meadow.jpg", format="JPEG", quality=90, exif=exif.tobytes())
upright = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
assert upright.size == meadow.size
def distance(a, b):
    return np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean()


assert distance(upright, meadow) < 8 < 3 * 8 < distance(Image.open(path).convert("RGB"), meadow), "upright only with EXIF"

save(source(1), "dog_beach.webp", format="WEBP", quality=90)
with open(os.path.join(out, "dog_beach.caption"), "w") as f:
    f.write("a photo of sks dog\n")

save(source(2).crop((38, 0, 126, 128)), "dog_room_portrait.png", format="PNG")
save(source(3).crop((0, 32, 128, 112)), "dog_city_landscape.png", format="PNG")
print("\n".join(sorted(os.listdir(out))))
