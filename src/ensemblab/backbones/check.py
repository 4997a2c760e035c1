"""What ``ensemblab weights`` runs: the encoders with weights here, and a check they are real.

``ensemblab weights`` lists every registered encoder with its weight file, size, sha256 and
licence. ``ensemblab weights check PHOTO...`` runs each packaged ImageNet classifier on the
photos and prints the top-5 classes per photo and encoder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ensemblab.backbones.encoder import imagenet_classifier
from ensemblab.backbones.specs import ENCODERS, EncoderSpec, sha256_of
from ensemblab.errors import DataError


def weight_rows() -> list[dict[str, str]]:
    """One row per registered encoder: name, present, file, size, sha256, licence."""
    rows = []
    for name, spec in ENCODERS.items():
        path = spec.packaged_file()
        rows.append({
            "encoder": name,
            "weights": "present" if path else ("missing" if spec.packaged else "local file"),
            "file": str(path) if path else (spec.package or "weights: /path/to/file"),
            "size": f"{path.stat().st_size / 2**20:.1f} MiB" if path else "-",
            "sha256": sha256_of(path) if path else "-",
            "licence": spec.licence,
        })
    return rows


def list_weights(args: argparse.Namespace) -> int:
    """Print one line per registered encoder (``ensemblab weights``)."""
    rows = weight_rows()
    for row in rows:
        print(f"{row['encoder']:<18} {row['weights']:<10} {row['size']:>9}  "
              f"{row['licence']:<10} {row['sha256'][:16]:<16}  {row['file']}")
    return 0


def load_photo(path: str | Path, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size / 0.875`` and centre-crop ``size``: ``[1, 3, S, S]``.

    Raises:
        DataError: missing or unreadable image.
    """
    path = Path(path)
    try:
        img = Image.open(path).convert("RGB")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(path, f"not a readable image ({type(exc).__name__})") from None
    short = round(size / 0.875)
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                     Image.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None]


def top5(spec_name: str, photos: list[str]) -> list[list[tuple[str, float]]]:
    """Top-5 ``(class name, probability)`` of each photo under one encoder's classifier."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    model = imagenet_classifier(spec_name)
    out = []
    with torch.inference_mode():
        for photo in photos:
            prob = model(load_photo(photo, model.input_size)).softmax(-1)[0]
            p, idx = prob.topk(5)
            out.append([(_IMAGENET_CATEGORIES[i], float(v)) for v, i in zip(p, idx.tolist())])
    return out


def check_photos(args: argparse.Namespace) -> int:
    """Print the top-5 classes of each photo per encoder (``ensemblab weights check``)."""
    names = args.encoders or [n for n, s in ENCODERS.items() if _has_weights(s)]
    for photo in args.images:  # fail on a bad photo before any model is built
        load_photo(photo, 8)
    for name in names:
        ENCODERS.get(name)
        for photo, classes in zip(args.images, top5(name, args.images)):
            text = ", ".join(f"{c} {p:.2f}" for c, p in classes)
            print(f"{Path(photo).name}  {name}  {text}")
    return 0


def _has_weights(spec: EncoderSpec) -> bool:
    return spec.packaged_file() is not None
