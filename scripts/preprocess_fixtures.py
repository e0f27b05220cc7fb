"""Reference tensors for harness/tests/classify.rs: the evaluation transform of the published
MobileOne checkpoints, computed with Pillow exactly as torchvision's transforms (which timm's eval
transform is built from) compute it on a PIL image:

    img.convert("RGB")
    Resize(floor(224 / crop_pct), interpolation=BILINEAR)   # shorter side; longer = int(s * long / short)
    CenterCrop(224)                                         # offsets int(round((side - 224) / 2))
    ToTensor()                                              # float32, / 255
    Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

torchvision itself is not imported: on a CPU-only machine `import torch` needs the whole CUDA
library set. The four steps above are torchvision's definitions, written out with Pillow and
numpy in float32. The source images are synthetic, from the integer pattern below, which the Rust
test recomputes. Each fixture keeps rows and columns 0, 4, ..., 220 and 223 of the [3, 224, 224]
tensor (a (3, 57, 57) float32 .npy) to stay small.
Run through scripts/make-preprocess-fixtures.sh.
"""

import math
import os
import sys

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
GRID = list(range(0, 224, 4)) + [223]

# name, width, height, PIL mode, crop_pct (0.875 = S0, 0.9 = S1-S4)
CASES = [
    ("landscape_rgb_s0", 320, 240, "RGB", 0.875),
    ("portrait_rgba_s1", 199, 301, "RGBA", 0.9),
    ("gray_s2", 500, 375, "L", 0.9),
    ("small_gray_alpha_s0", 60, 40, "LA", 0.875),
]


def pattern(width, height, channels):
    """The synthetic image: a gradient with a high-frequency ripple, uint8 [h, w, c]."""
    y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(channels), indexing="ij")
    v = x * (3 + c) + y * (5 + 2 * c) + ((x * x + 7 * y * c + 11) % 31) * 4
    return (v % 256).astype(np.uint8)


def transform(img, crop_pct):
    img = img.convert("RGB")
    short = math.floor(224 / crop_pct)
    w, h = img.size
    if w <= h:
        size = (short, int(short * h / w))
    else:
        size = (int(short * w / h), short)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    t = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255)
    t = (t - MEAN) / STD
    return np.ascontiguousarray(t.transpose(2, 0, 1), dtype=np.float32)


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, width, height, mode, crop_pct in CASES:
        channels = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]
        array = pattern(width, height, channels)
        if mode == "L":
            array = array[:, :, 0]
        img = Image.fromarray(array, mode=mode)
        full = transform(img, crop_pct)
        sampled = np.ascontiguousarray(full[:, GRID][:, :, GRID])
        np.save(os.path.join(out_dir, f"{name}.npy"), sampled)
        print(f"{name}: {width}x{height} {mode} crop_pct {crop_pct} -> {sampled.shape}")


if __name__ == "__main__":
    main(sys.argv[1])
