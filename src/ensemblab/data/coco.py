"""COCO instance JSON: validated reading, masks per image, writing.

The file is validated once on read (required keys, unique ids, every annotation pointing at a
known image and category, segmentation a polygon list or an RLE dict of the image's size), so
later code can trust it. Masks are rasterised by pycocotools (polygons via ``frPyObjects``;
COCO RLE is column-major, see :mod:`ensemblab.data.rle`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from ensemblab.data.rle import mask_to_coco_rle
from ensemblab.errors import DataError
from ensemblab.io import write_json


def read_coco_instances(path: str | Path) -> dict:
    """Read and validate a COCO instance-segmentation JSON file.

    Args:
        path: JSON with ``images`` (id, width, height, file_name), ``annotations`` (id,
            image_id, category_id, segmentation) and ``categories`` (id, name).

    Returns:
        The parsed dict, unchanged.

    Raises:
        DataError: invalid JSON, a missing key, a duplicate id, an annotation whose image or
            category is unknown, or a malformed segmentation (naming the annotation).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        coco = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"invalid JSON ({exc})") from None
    validate_coco_instances(coco, path)
    return coco


def validate_coco_instances(coco: dict, path: str | Path | None = None) -> None:
    """Check the structure of a COCO instance dict; raise DataError naming ``path``."""
    def fail(problem: str) -> None:
        raise DataError(path, problem)

    if not isinstance(coco, dict):
        fail("top level is not a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            fail(f"missing list {key!r}")
    images: dict = {}
    for i, img in enumerate(coco["images"]):
        where = f"images[{i}]"
        for key in ("id", "width", "height", "file_name"):
            if not isinstance(img, dict) or key not in img:
                fail(f"{where}: missing key {key!r}")
        if not all(isinstance(img[k], Integral) and img[k] > 0 for k in ("width", "height")):
            fail(f"{where}: width/height must be positive integers")
        if not _is_id(img["id"]):
            fail(f"{where}: id {img['id']!r} is not an integer or a string")
        if img["id"] in images:
            fail(f"{where}: duplicate image id {img['id']!r}")
        images[img["id"]] = img
    categories = set()
    for i, cat in enumerate(coco["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            fail(f"categories[{i}]: needs 'id' and 'name'")
        if not _is_id(cat["id"]):
            fail(f"categories[{i}]: id {cat['id']!r} is not an integer or a string")
        if cat["id"] in categories:
            fail(f"categories[{i}]: duplicate category id {cat['id']!r}")
        categories.add(cat["id"])
    ann_ids = set()
    for i, ann in enumerate(coco["annotations"]):
        for key in ("id", "image_id", "category_id", "segmentation"):
            if not isinstance(ann, dict) or key not in ann:
                fail(f"annotations[{i}]: missing key {key!r}")
        for key in ("id", "image_id", "category_id"):
            if not _is_id(ann[key]):
                fail(f"annotations[{i}]: {key} {ann[key]!r} is not an integer or a string")
        where = f"annotations[{i}] (id {ann['id']})"
        if ann["id"] in ann_ids:
            fail(f"{where}: duplicate annotation id")
        ann_ids.add(ann["id"])
        if ann["image_id"] not in images:
            fail(f"{where}: image_id {ann['image_id']!r} not in images")
        if ann["category_id"] not in categories:
            fail(f"{where}: category_id {ann['category_id']!r} not in categories")
        img = images[ann["image_id"]]
        problem = _segmentation_problem(ann["segmentation"], img["height"], img["width"])
        if problem:
            fail(f"{where}: {problem}")


def _is_id(value) -> bool:
    """COCO ids are integers (some files use strings); never bools, floats or containers."""
    return isinstance(value, (Integral, str)) and not isinstance(value, bool)


def _segmentation_problem(seg, height: int, width: int) -> str | None:
    """Why ``seg`` is not a valid polygon list / RLE for an HxW image, or None."""
    if isinstance(seg, dict):
        if "size" not in seg or "counts" not in seg:
            return "RLE segmentation needs 'size' and 'counts'"
        size = seg["size"]
        if not (isinstance(size, list) and len(size) == 2
                and all(isinstance(v, Integral) for v in size)):
            return f"RLE size {size!r} is not [height, width]"
        if list(size) != [height, width]:
            return f"RLE size {list(size)} != image size [{height}, {width}]"
        counts = seg["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, Integral) and not isinstance(c, bool) and c >= 0
                       for c in counts):
                return "uncompressed RLE counts must be non-negative integers"
        elif isinstance(counts, str):
            counts = _compressed_counts(counts)
            if counts is None:
                return "compressed RLE counts string is malformed"
        else:
            return "RLE counts must be a string or a list of integers"
        if sum(counts) != height * width:
            return f"RLE counts sum to {sum(counts)}, not {height * width} pixels"
        return None
    if not isinstance(seg, list) or not seg:
        return "segmentation must be a non-empty polygon list or an RLE dict"
    for poly in seg:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            return "each polygon needs an even number (>= 6) of coordinates"
        if not all(isinstance(v, Real) for v in poly):
            return "polygon coordinates must be numbers"
    return None


def _compressed_counts(text: str) -> list[int] | None:
    """The run lengths of a pycocotools compressed counts string, or None if it is malformed.

    The same decoding as pycocotools' ``rleFrString`` (6-bit groups from ``'0'``, a
    continuation bit, a sign bit, deltas from the count two places back), done here because
    pycocotools decodes a string whose runs do not cover the image into uninitialised memory.
    """
    counts: list[int] = []
    p = 0
    while p < len(text):
        x = k = 0
        more = True
        while more:
            if p >= len(text) or not 0 <= ord(text[p]) - 48 < 64 or k > 6:
                return None
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << 5 * k
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << 5 * k
        if len(counts) > 2:
            x += counts[-2]
        if not 0 <= x < 2**32:
            return None
        counts.append(x)
    return counts


def group_annotations(coco: dict) -> dict:
    """``{image_id: [annotation, ...]}`` in file order (every image present, maybe empty)."""
    groups: dict = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        groups[ann["image_id"]].append(ann)
    return groups


def segmentation_to_mask(seg, height: int, width: int) -> np.ndarray:
    """Rasterise one COCO segmentation (polygons or RLE) to [H, W] bool via pycocotools."""
    if isinstance(seg, dict):
        counts = seg["counts"]
        if isinstance(counts, list):
            rle = coco_mask.frPyObjects(seg, height, width)
        else:
            rle = {"size": [height, width],
                   "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        rle = coco_mask.merge(coco_mask.frPyObjects(seg, height, width))
    return coco_mask.decode(rle).astype(bool)


def coco_annotation_masks(coco: dict, image_id, annotations: Sequence[dict] | None = None
                          ) -> np.ndarray:
    """Masks of one image's annotations.

    Args:
        coco: a dict from :func:`read_coco_instances`.
        image_id: the image's ``id``.
        annotations: that image's annotations when already grouped (see
            :func:`group_annotations`), to avoid a scan over all annotations per image.

    Returns:
        [N, H, W] bool, one mask per annotation in file order.
    """
    img = next((im for im in coco["images"] if im["id"] == image_id), None)
    if img is None:
        raise KeyError(f"image id {image_id!r} not in the COCO dict")
    if annotations is None:
        annotations = [a for a in coco["annotations"] if a["image_id"] == image_id]
    h, w = img["height"], img["width"]
    out = np.zeros((len(annotations), h, w), dtype=bool)
    for i, ann in enumerate(annotations):
        out[i] = segmentation_to_mask(ann["segmentation"], h, w)
    return out


def mask_annotation(mask: np.ndarray, ann_id: int, image_id, category_id: int,
                    score: float | None = None) -> dict:
    """A COCO annotation dict for a binary mask (compressed RLE, area, xywh bbox).

    Args:
        mask: [H, W] bool.
        ann_id: annotation id.
        image_id: its image's id.
        category_id: its category id.
        score: confidence, for detection results; omitted when None.
    """
    rle = mask_to_coco_rle(mask)
    enc = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    ann = {"id": int(ann_id), "image_id": image_id, "category_id": int(category_id),
           "segmentation": rle, "area": float(coco_mask.area(enc)),
           "bbox": [float(v) for v in coco_mask.toBbox(enc)], "iscrowd": 0}
    if score is not None:
        ann["score"] = float(score)
    return ann


def write_coco_instances(path: str | Path, images: Sequence[dict],
                         annotations: Sequence[dict], categories: Sequence[dict]) -> None:
    """Validate and write a COCO instance JSON atomically.

    Args:
        path: output JSON.
        images: ``[{"id", "width", "height", "file_name"}, ...]``.
        annotations: COCO annotation dicts (see :func:`mask_annotation` to build them from
            masks).
        categories: ``[{"id", "name"}, ...]``.

    Raises:
        DataError: the assembled dict fails :func:`validate_coco_instances`.
    """
    coco = {"images": list(images), "annotations": list(annotations),
            "categories": list(categories)}
    validate_coco_instances(coco, path)
    write_json(path, coco)
