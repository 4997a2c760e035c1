"""Convert a Kaggle Sartorius dataset (train.csv + train/<id>.png) to COCO instance JSON.

Usage::

    python datasets/prepare_sartorius_coco.py --data $ENSEMBLAB_DATA/sartorius \
        [--out annotations_coco.json] [--folds 5]

Writes ``<data>/annotations_coco.json`` (LIVECell-style: one COCO image per ``id`` with
``file_name`` "train/<id>.png" relative to the JSON, one annotation per ``train.csv`` row with
a compressed COCO RLE, categories = cell types). Each image entry also carries ``cell_type``,
``sample_id`` and, with ``--folds K``, its ``fold`` (stratified by cell type, grouped by
sample), so the JSON alone can be split. Kaggle RLEs are row-major and 1-based, COCO RLEs are
column-major: the conversion goes through the decoded mask, never by reusing run lengths.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ensemblab.data.coco import mask_annotation, write_coco_instances
from ensemblab.data.rle import rle_decode
from ensemblab.errors import EnsemblabError
from ensemblab.projects.sartorius_cells.data import load_records, make_folds


def convert(data: Path, out: Path, folds: int | None = None) -> Path:
    """Write the COCO JSON for the Kaggle dataset at ``data``; returns its path."""
    records = load_records(data)
    fold_of = make_folds(records, folds) if folds else None
    types = sorted({r.cell_type for r in records})
    images, annotations = [], []
    for index, rec in enumerate(records):
        image = {"id": index + 1, "width": rec.width, "height": rec.height,
                 "file_name": str(rec.image_path.relative_to(out.parent.resolve())
                                  if rec.image_path.resolve().is_relative_to(out.parent.resolve())
                                  else rec.image_path.resolve()),
                 "cell_type": rec.cell_type, "sample_id": rec.group}
        if fold_of is not None:
            image["fold"] = int(fold_of[index])
        images.append(image)
        for k, rle in enumerate(rec.rles):
            mask = rle_decode(rle, (rec.height, rec.width), source=f"{rec.image_id} row {k + 1}")
            annotations.append(mask_annotation(mask, len(annotations) + 1, index + 1,
                                               types.index(rec.cell_type) + 1))
    write_coco_instances(out, images, annotations,
                         [{"id": i + 1, "name": t} for i, t in enumerate(types)])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Kaggle root with train.csv and train/")
    parser.add_argument("--out", default=None,
                        help="output JSON (default DATA/annotations_coco.json)")
    parser.add_argument("--folds", type=int, default=None, help="add a 'fold' field (K folds)")
    args = parser.parse_args(argv)
    data = Path(args.data).resolve()
    out = Path(args.out).resolve() if args.out else data / "annotations_coco.json"
    try:
        convert(data, out, args.folds)
    except EnsemblabError as exc:
        print(f"prepare_sartorius_coco: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
