"""Convert Labelme JSON annotations to class-index PNG masks (the paper annotated with Labelme).

    python datasets/prepare_mineral_labelme.py --json-dir ann/ --out seg/train \
        --classes background gangue chalcopyrite galena magnetite bornite pyrrhotite pyrite \
        sphalerite

Each ``*.json`` (Labelme: ``imageHeight``, ``imageWidth``, ``shapes`` with ``label``,
``points``, ``shape_type`` polygon / rectangle / circle) becomes ``OUT/<stem>.png``: uint8 class
indices, 0 (the first class) where no shape lies, later shapes painted over earlier ones (the
order Labelme draws them). An unknown label, a malformed file or an unsupported shape type is a
one-line error naming the file; nothing is written for a file that fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ensemblab.data.images import write_png
from ensemblab.errors import DataError, EnsemblabError


def labelme_to_mask(path: Path, classes: list[str]) -> np.ndarray:
    """Rasterise one Labelme file to a uint8 [H, W] class-index mask."""
    try:
        doc = json.loads(path.read_text())
        height, width = int(doc["imageHeight"]), int(doc["imageWidth"])
        shapes = doc["shapes"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(path, f"not a Labelme JSON file ({type(exc).__name__}: {exc})") from None
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for i, shape in enumerate(shapes):
        label = shape.get("label")
        if label not in classes:
            raise DataError(path, f"shape {i}: label {label!r} not in the class list {classes}")
        value = classes.index(label)
        points = [tuple(map(float, p)) for p in shape.get("points", [])]
        kind = shape.get("shape_type") or "polygon"
        if kind == "polygon" and len(points) >= 3:
            draw.polygon(points, fill=value)
        elif kind == "rectangle" and len(points) == 2:
            (x0, y0), (x1, y1) = points
            draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=value)
        elif kind == "circle" and len(points) == 2:
            (cx, cy), (px, py) = points
            r = float(np.hypot(px - cx, py - cy))
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value)
        else:
            raise DataError(path, f"shape {i}: unsupported {kind!r} with {len(points)} points")
    return np.asarray(canvas)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-dir", required=True, help="folder of Labelme .json files")
    parser.add_argument("--out", required=True, help="output folder of class-index PNGs")
    parser.add_argument("--classes", nargs="+", required=True,
                        help="class names in index order; the first is the unlabelled value")
    args = parser.parse_args(argv)
    files = sorted(Path(args.json_dir).glob("*.json"))
    try:
        if len(args.classes) > 256:
            raise DataError(None, "at most 256 classes fit an 8-bit mask")
        if not files:
            raise DataError(args.json_dir, "no .json files")
        for path in files:
            write_png(Path(args.out) / f"{path.stem}.png", labelme_to_mask(path, args.classes))
    except EnsemblabError as exc:
        print(f"prepare_mineral_labelme: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(files)} masks -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
