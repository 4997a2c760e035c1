"""Slices, labels, splits and tiles for the FRE experiments.

Three on-disk layouts are read (``data.format``):

* ``slices``: an image folder and a label folder paired by the slice number at the end of the
  file stem, e.g. the Drosophila ssTEM stack ``raw/07.tif`` <-> ``labels/labels00000007.png``.
* ``folder``: any image folder and label folder paired by identical stems (``a.png`` <->
  ``a.png``), e.g. a mouse-liver-like 3-class set with class-index PNGs.
* ``tiff_stack``: one multi-page TIFF of images and one of labels (ISBI 2012
  ``train-volume.tif`` / ``train-labels.tif``, binary membranes). ``data.image_stack`` /
  ``data.label_stack`` name them; left null, they are found in the folder: the label stack is
  the one TIFF whose name contains ``label``, the image stack the other TIFF, or, when there
  are several (ISBI also ships ``test-volume.tif``), the one whose name shares the longest
  prefix with the label stack's (``train-``).

Label files hold grey values; ``data.label_map`` turns them into class indices and any other
value is an error naming the file. Left null it is ``isbi2012`` for ``tiff_stack`` and
``sstem`` for ``slices``; ``folder`` needs an explicit one. Pinned maps (Sec. 4 of the paper
uses 4 ssTEM classes):

* ``sstem``: 0, 32, 64, 96 (membrane orientations) and 128 (junction) -> membrane (1);
  191 -> mitochondria (2); 223 -> synapse (3); 159 (glia) and 255 (intracellular) ->
  background (0). These nine values are exactly those present in ``stack1``.
* ``isbi2012``: 0 (black membrane) -> membrane (1), 255 -> background (0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ensemblab.config import check_choice
from ensemblab.data.images import list_pairs, read_image, read_label_png, read_tiff_stack
from ensemblab.errors import ConfigError, DataError
from ensemblab.registry import unknown_name_message

SSTEM_CLASSES = ("background", "membrane", "mitochondria", "synapse")
SSTEM_LABEL_MAP = {0: 1, 32: 1, 64: 1, 96: 1, 128: 1, 159: 0, 191: 2, 223: 3, 255: 0}
ISBI_CLASSES = ("background", "membrane")
ISBI_LABEL_MAP = {0: 1, 255: 0}
PINNED_MAPS = {"sstem": (SSTEM_CLASSES, SSTEM_LABEL_MAP),
               "isbi2012": (ISBI_CLASSES, ISBI_LABEL_MAP)}
IMAGE_EXTS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
DEFAULT_MAPS = {"slices": "sstem", "tiff_stack": "isbi2012"}
FORMATS = ("slices", "folder", "tiff_stack")


@dataclass
class Slice:
    """One section: ``image`` uint8 ``[H, W]``, ``label`` uint8 class indices ``[H, W]``,
    ``source`` the label file it was read from (named in messages)."""

    name: str
    image: np.ndarray
    label: np.ndarray
    source: str = ""


def resolve_label_map(cfg: dict[str, Any]) -> tuple[tuple[str, ...], dict[int, int]]:
    """``(class names, {grey value: class index})`` from ``data.label_map`` / ``data.classes``.

    ``label_map`` is a pinned name, a mapping, or null (the pinned map of ``data.format``).
    """
    spec = cfg["label_map"]
    if spec is None:
        fmt = cfg["format"]
        if fmt not in DEFAULT_MAPS:
            raise ConfigError(f"data.label_map: needed for data.format={fmt!r} (a mapping grey "
                              f"value -> class index, with data.classes)")
        spec = DEFAULT_MAPS[fmt]
    if isinstance(spec, str):
        if spec not in PINNED_MAPS:
            raise ConfigError(f"{unknown_name_message('data.label_map', spec, PINNED_MAPS)}, "
                              "or a mapping grey value -> class index")
        classes, mapping = PINNED_MAPS[spec]
        return tuple(cfg["classes"] or classes), dict(mapping)
    classes = tuple(cfg["classes"] or ())
    mapping = {int(k): int(v) for k, v in (spec or {}).items()}
    if not classes or not mapping:
        raise ConfigError("data.classes and data.label_map are both needed for a custom mapping")
    if max(mapping.values()) >= len(classes) or min(mapping.values()) < 0:
        raise ConfigError(f"data.label_map: class indices must be in [0, {len(classes) - 1}]")
    return classes, mapping


def map_labels(values: np.ndarray, mapping: dict[int, int], source: str | Path) -> np.ndarray:
    """Grey values ``[H, W]`` -> class indices uint8 ``[H, W]``; DataError on unknown values."""
    lut = np.full(65536 if values.dtype == np.uint16 else 256, 255, np.uint8)
    for value, cls in mapping.items():
        if value < lut.size:
            lut[value] = cls
    if values.dtype not in (np.uint8, np.uint16):
        raise DataError(source, f"label dtype {values.dtype} (expected uint8 or uint16)")
    out = lut[values]
    if (out == 255).any():
        unknown, pixels = np.unique(values[out == 255], return_counts=True)
        unknown, pixels = unknown[:8].tolist(), pixels[:8].tolist()
        counts = ", ".join(f"{v}: {n} px" for v, n in zip(unknown, pixels))
        raise DataError(source, f"unknown label values {unknown} ({counts}; known: "
                                f"{sorted(mapping)})")
    return out


def _slice_number(path: Path) -> int:
    match = re.search(r"(\d+)$", path.stem)
    if match is None:
        raise DataError(path, "no slice number at the end of the file name")
    return int(match.group(1))


def _numbered(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        raise DataError(folder, "folder not found")
    files = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTS]
    if not files:
        raise DataError(folder, "no image files")
    out: dict[int, Path] = {}
    for path in files:
        num = _slice_number(path)
        if num in out:
            raise DataError(path, f"slice number {num} also used by {out[num].name}")
        out[num] = path
    return out


def _stem_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def find_stacks(root: Path, cfg: dict[str, Any]) -> tuple[Path, Path]:
    """``(image stack, label stack)`` of a ``tiff_stack`` folder: configured or detected.

    Raises:
        DataError: the folder holds no single label TIFF or no matching image TIFF.
    """
    image, label = cfg["image_stack"], cfg["label_stack"]
    if image and label:
        return root / image, root / label
    tiffs = sorted(p for p in root.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    labels = [p for p in tiffs if "label" in p.name.lower()]
    if label:
        labels = [root / label]
    if len(labels) != 1:
        raise DataError(root, f"{len(labels)} label TIFFs (names with 'label': "
                              f"{[p.name for p in labels]}); set data.label_stack")
    if image:
        return root / image, labels[0]
    images = [p for p in tiffs if p != labels[0] and "label" not in p.name.lower()]
    if not images:
        raise DataError(root, f"no image TIFF beside {labels[0].name}; set data.image_stack")
    scores = [_stem_prefix(p.stem.lower(), labels[0].stem.lower()) for p in images]
    best = [p for p, s in zip(images, scores) if s == max(scores)]
    if len(best) > 1:
        raise DataError(root, f"image TIFFs {[p.name for p in best]} all match "
                              f"{labels[0].name}; set data.image_stack")
    return best[0], labels[0]


def _checked(image: np.ndarray, label: np.ndarray, name: str, label_src: str | Path,
             mapping: dict[int, int]) -> Slice:
    if image.ndim == 3:
        image = image.mean(axis=-1).astype(image.dtype)
    if image.shape != label.shape:
        raise DataError(label_src, f"label shape {label.shape} != image shape {image.shape}")
    if image.dtype != np.uint8:
        image = (255.0 * image / max(float(image.max()), 1.0)).astype(np.uint8)
    return Slice(name, image, map_labels(label, mapping, label_src), str(label_src))


def load_slices(root: str | Path, cfg: dict[str, Any]) -> list[Slice]:
    """Read every (image, label) slice of a dataset, ordered by slice number / name.

    Args:
        root: dataset folder.
        cfg: the ``data`` section (``format``, ``image_dir``, ``label_dir``, ``image_stack``,
            ``label_stack``, ``label_map``, ``classes``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")
    _, mapping = resolve_label_map(cfg)
    fmt = check_choice(cfg, "format", FORMATS, "data")
    if fmt == "tiff_stack":
        img_path, lab_path = find_stacks(root, cfg)
        images, labels = read_tiff_stack(img_path), read_tiff_stack(lab_path)
        if images.shape != labels.shape:
            raise DataError(lab_path, f"label stack shape {labels.shape} != image stack "
                                      f"{images.shape}")
        return [_checked(images[z], labels[z], f"{img_path.stem}_{z:03d}",
                         f"{lab_path} (slice {z})", mapping) for z in range(len(images))]
    image_dir, label_dir = root / cfg["image_dir"], root / cfg["label_dir"]
    if fmt == "slices":
        images, labels = _numbered(image_dir), _numbered(label_dir)
        missing = sorted(set(images) ^ set(labels))
        if missing:
            side = image_dir if missing[0] not in images else label_dir
            raise DataError(side, f"slice {missing[0]} has no partner in the other folder")
        pairs = [(images[n], labels[n]) for n in sorted(images)]
    else:  # folder
        pairs = list_pairs(image_dir, label_dir, IMAGE_EXTS, cfg["label_ext"])
    out = []
    for img_path, lab_path in pairs:
        image = read_image(img_path, mode="gray")
        label = read_label_png(lab_path, shape=image.shape[:2])
        out.append(_checked(image, label, Path(img_path).stem, lab_path, mapping))
    return out


def parse_indices(spec: Any, n: int, what: str) -> list[int]:
    """``3``, ``"0-11"`` or a list of those -> sorted slice positions (checked against ``n``)."""
    items = spec if isinstance(spec, list) else [spec]
    out: set[int] = set()
    for item in items:
        text = str(item)
        lo, _, hi = text.partition("-")
        try:
            rng = range(int(lo), int(hi or lo) + 1)
        except ValueError:
            raise ConfigError(f"data.split.{what}: {text!r} is not N or A-B") from None
        out.update(rng)
    if not out or max(out) >= n or min(out) < 0:
        raise ConfigError(f"data.split.{what}: slices {sorted(out)} outside the {n} slices found")
    return sorted(out)


def split_slices(slices: list[Slice], split: dict[str, Any]) -> dict[str, list[Slice]]:
    """``{"train": [...], "val": [...], "test": [...]}`` by slice position; must not overlap."""
    parts = {k: parse_indices(v, len(slices), k) for k, v in split.items()}
    seen: dict[int, str] = {}
    for name, idx in parts.items():
        for i in idx:
            if i in seen:
                raise ConfigError(f"data.split: slice {i} is in both {seen[i]} and {name}")
            seen[i] = name
    return {name: [slices[i] for i in idx] for name, idx in parts.items()}


def rescale(image: np.ndarray, label: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize a slice by ``scale`` (image: area/bilinear, labels: nearest only)."""
    if scale == 1.0:
        return image, label
    h, w = label.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(image).resize(size, Image.Resampling.BOX if scale < 1 else
                                        Image.Resampling.BILINEAR)
    lab = Image.fromarray(label).resize(size, Image.Resampling.NEAREST)
    return np.asarray(img), np.asarray(lab)
