"""Tile a VOC-like mineral dataset (e.g. LumenStone) into fixed-size tiles, as the paper does.

    python datasets/prepare_mineral.py --src $ENSEMBLAB_DATA/mineral/lumenstone \
        --dst data/mineral/lumenstone_512 --tile 512 [--scale 1.0] [--overlap 0]

Reads ``SRC/raw/<split>/*.jpg`` + ``SRC/seg/<split>/*.png`` (validated: same size, labels in
0..--num-classes-1), rescales by ``--scale`` (bilinear images, nearest-neighbour masks) and
writes ``DST/raw/<split>/<name>_y<Y>_x<X>.jpg`` + ``DST/seg/<split>/<name>_y<Y>_x<X>.png``.
Tiles at the right/bottom border are shifted inward so none needs padding (an image smaller
than the tile is padded: reflected image, background 0 mask). Outputs are written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ensemblab.data.images import list_pairs, read_image, read_label_png, write_png
from ensemblab.data.tiling import extract_tiles, tile_boxes
from ensemblab.errors import EnsemblabError
from ensemblab.io import atomic_path
from ensemblab.projects.mineral_ruel.data import rescale


def tile_split(src: Path, dst: Path, split: str, tile: int, scale: float, overlap: int,
               num_classes: int) -> int:
    """Tile one split; returns the number of tiles written."""
    pairs = list_pairs(src / "raw" / split, src / "seg" / split,
                       (".jpg", ".jpeg", ".png", ".tif", ".bmp"), ".png")
    count = 0
    for image_path, mask_path in pairs:
        image = read_image(image_path, mode="rgb")
        mask = read_label_png(mask_path, range(num_classes), image.shape[:2]).astype(np.uint8)
        image, mask = rescale(image, scale, False), rescale(mask, scale, True)
        boxes = tile_boxes(image.shape[0], image.shape[1], tile, overlap)
        for (y0, x0, _, _), im, m in zip(boxes, extract_tiles(image, boxes, "reflect"),
                                         extract_tiles(mask, boxes, "constant")):
            stem = f"{image_path.stem}_y{y0:05d}_x{x0:05d}"
            with atomic_path(dst / "raw" / split / f"{stem}.jpg") as tmp:
                Image.fromarray(np.ascontiguousarray(im)).save(tmp, quality=95)
            write_png(dst / "seg" / split / f"{stem}.png", m)
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="dataset with raw/ and seg/")
    parser.add_argument("--dst", required=True, help="output folder")
    parser.add_argument("--tile", type=int, default=512, help="tile side (default 512)")
    parser.add_argument("--scale", type=float, default=1.0, help="rescale before tiling")
    parser.add_argument("--overlap", type=int, default=0, help="tile overlap in pixels")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to tile")
    parser.add_argument("--num-classes", type=int, default=13,
                        help="labels must lie in 0..N-1 (LumenStone: 13)")
    args = parser.parse_args(argv)
    try:
        for split in args.splits:
            n = tile_split(Path(args.src), Path(args.dst), split, args.tile, args.scale,
                           args.overlap, args.num_classes)
            print(f"{split}: {n} tiles -> {args.dst}")
    except EnsemblabError as exc:
        print(f"prepare_mineral: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
