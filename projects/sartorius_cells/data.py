"""Cell instance datasets in three on-disk layouts, folds, image reading and standardisation.

Layouts (exact trees in ``datasets/README.md``), detected by :func:`load_records`:

* Kaggle Sartorius: ``train.csv`` (``id,annotation,width,height,cell_type[,sample_id]``, one
  row per instance, RLE row-major 1-based) + ``train/<id>.png``.
* COCO instance JSON (LIVECell style): ``*.json`` + images in ``images/`` (or beside it).
* Instance-id PNG folders (usiigaci): ``images/<name>/{phase.png | raw.tif, instances_ids.png}``.

Folds are stratified by cell type and grouped by sample (frames of one sample never straddle
train and validation), via scikit-learn's ``StratifiedGroupKFold``.

Images reach a network the way it was trained to see them (:func:`image_reader`): native
members were trained on grey cells and read grey; a detectron2-imported run reads colour, and
its transform orders the channels as the checkpoint's ``INPUT.FORMAT`` says.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from ensemblab.data.coco import coco_annotation_masks, read_coco_instances
from ensemblab.data.images import read_image, read_label_png
from ensemblab.data.kaggle import read_kaggle_csv
from ensemblab.data.rle import instance_map_to_masks, masks_to_instance_map, rle_decode
from ensemblab.errors import ConfigError, DataError

USIIGACI_TYPE = "usiigaci_phase"


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 as is; uint16 scaled by its 0.5/99.5 percentiles (over all channels together)."""
    if image.dtype != np.uint8:
        lo, hi = np.percentile(image, (0.5, 99.5))
        image = np.clip((image.astype(np.float32) - lo) / max(hi - lo, 1.0) * 255, 0, 255)
        image = image.astype(np.uint8)
    return image


def read_gray_uint8(path: str | Path) -> np.ndarray:
    """uint8[H, W] grayscale; uint16 images are scaled by their 0.5/99.5 percentiles."""
    return _to_uint8(read_image(path, mode="gray"))


def read_rgb_uint8(path: str | Path) -> np.ndarray:
    """uint8[H, W, 3] RGB; a grey file becomes three equal channels (detectron2's
    ``read_image``); uint16 images are scaled by their 0.5/99.5 percentiles."""
    return _to_uint8(read_image(path, mode="rgb"))


class ImageReader:
    """Reads image files for one member, for the length of one command.

    Args:
        colour: ``False``: uint8 ``[H, W]`` grey; a colour file is converted to luma and the
            first one prints a one-line note on stderr. ``True``: uint8 ``[H, W, 3]`` RGB
            (:func:`read_rgb_uint8`); the network's transform puts the channels in its
            checkpoint's order.
    """

    def __init__(self, colour: bool = False):
        self.colour = colour
        self.noted = False

    def __call__(self, path: str | Path) -> np.ndarray:
        """The image of ``path`` as the member's network takes it."""
        if self.colour:
            return read_rgb_uint8(path)
        image = read_image(path)
        if image.ndim == 2:
            return _to_uint8(image)
        if not self.noted:  # one line per command: a folder of photos would repeat it per file
            print(f"note: {path} is a colour image; this member was trained on grey cells, so "
                  "colour images are converted to grey (luma)", file=sys.stderr, flush=True)
            self.noted = True
        return read_gray_uint8(path)


def image_reader(model_cfg: dict) -> ImageReader:
    """The reader of a run's ``model`` section: colour for a detectron2-imported run (its
    ``detectron2`` keys hold ``INPUT.FORMAT`` and the pixel mean / std the transform applies),
    grey for a member trained on grey cells."""
    return ImageReader(colour=bool(model_cfg.get("detectron2")))


def list_images(folder: str | Path) -> list[tuple[str, Path]]:
    """``(image_id, path)`` of the images to predict, sorted by id.

    Accepts a folder of images (``*.png``, ``*.tif``, ``*.jpg``; id = file stem), a Kaggle
    dataset root (its ``test/``, else ``train/``), or an instance-folder dataset
    (``[images/]<name>/{phase.png | raw.tif}``; id = folder name), or one such ``<name>/``
    folder.
    """
    root = Path(folder)
    exts = {".png", ".tif", ".tiff", ".jpg", ".jpeg"}
    own = next((root / n for n in ("phase.png", "raw.tif") if (root / n).is_file()), None)
    if own is not None:  # one instance folder: its image, not its label PNGs
        return [(root.name, own)]
    for cand in (root, root / "test", root / "train"):
        files = sorted(p for p in cand.glob("*") if p.suffix.lower() in exts)
        if files:
            return [(p.stem, p) for p in files]
    folders = [r for r in (root / "images", root) if any(r.glob("*/instances_ids.png"))
               or any(r.glob("*/phase.png")) or any(r.glob("*/raw.tif"))]
    if folders:
        out = []
        for sub in sorted(folders[0].iterdir(), key=lambda p: (len(p.name), p.name)):
            image = next((sub / n for n in ("phase.png", "raw.tif", "image.png")
                          if (sub / n).is_file()), None)
            if image is not None:
                out.append((sub.name, image))
        return out
    raise DataError(root, "no images found (*.png, *.tif, *.jpg, test/, train/ or "
                          "<name>/phase.png)")


@dataclass
class CellRecord:
    """One annotated image; pixels are read lazily.

    Attributes:
        image_id: unique id (Kaggle ``id``, COCO file stem, or folder name).
        image_path: the image file.
        cell_type: cell type name (the stratification and class label).
        group: sample the image belongs to (folds never split a group).
        height, width: image size.
        rles: Kaggle RLEs of the instances (Kaggle layout).
        idmap_path: instance-id PNG (folder layout).
        coco: ``(coco dict, COCO image id)`` (COCO layout).
        reader: how :meth:`load_image` reads the file (default :func:`read_gray_uint8`), e.g.
            the :func:`image_reader` of the member being evaluated.
    """

    image_id: str
    image_path: Path
    cell_type: str
    group: str
    height: int
    width: int
    rles: list[str] = field(default_factory=list, repr=False)
    idmap_path: Path | None = None
    coco: tuple[dict, int] | None = field(default=None, repr=False)
    reader: Callable[[Path], np.ndarray] | None = field(default=None, repr=False, compare=False)

    def load_image(self) -> np.ndarray:
        """uint8[H, W] grayscale (or what ``reader`` returns, e.g. [H, W, 3] RGB); uint16
        images are scaled by their 0.5/99.5 percentiles."""
        image = (self.reader or read_gray_uint8)(self.image_path)
        if image.shape[:2] != (self.height, self.width):
            raise DataError(self.image_path, f"image is {image.shape[1]}x{image.shape[0]}, "
                                             f"annotations say {self.width}x{self.height}")
        return image

    def load_masks(self) -> np.ndarray:
        """bool[N, H, W] instance masks (Kaggle and COCO masks may overlap)."""
        if self.idmap_path is not None:
            return instance_map_to_masks(self.load_idmap())[0]
        if self.coco is not None:
            return coco_annotation_masks(*self.coco)
        shape = (self.height, self.width)
        masks = np.zeros((len(self.rles), *shape), bool)
        for i, rle in enumerate(self.rles):
            masks[i] = rle_decode(rle, shape, source=f"{self.image_id} instance {i + 1}")
        return masks

    def load_idmap(self) -> np.ndarray:
        """int32[H, W] instance ids (0 background); overlapping pixels go to the earlier one."""
        if self.idmap_path is not None:
            return read_label_png(self.idmap_path, shape=(self.height, self.width)
                                  ).astype(np.int32)
        return masks_to_instance_map(self.load_masks())


def _kaggle_records(csv: Path, image_dir: Path) -> list[CellRecord]:
    images = read_kaggle_csv(csv)
    cols = pd.read_csv(csv, nrows=0).columns
    groups = {}
    if "sample_id" in cols:
        table = pd.read_csv(csv, usecols=["id", "sample_id"], dtype=str)
        groups = dict(zip(table["id"], table["sample_id"]))
    records = []
    for image_id, img in images.items():
        path = image_dir / f"{image_id}.png"
        if not path.is_file():
            raise DataError(csv, f"image {image_id!r} has no file {path}")
        records.append(CellRecord(image_id, path, img.cell_type, groups.get(image_id, image_id),
                                  img.height, img.width, rles=list(img.rles)))
    return records


def _folder_records(root: Path) -> list[CellRecord]:
    records = []
    for folder in sorted((p.parent for p in root.glob("*/instances_ids.png")),
                         key=lambda p: (len(p.name), p.name)):
        image = next((folder / n for n in ("phase.png", "raw.tif", "image.png")
                      if (folder / n).is_file()), None)
        if image is None:
            raise DataError(folder, "no phase.png / raw.tif / image.png beside instances_ids.png")
        try:
            with Image.open(folder / "instances_ids.png") as im:
                width, height = im.size
        except Exception as exc:  # PIL raises several types on a corrupt header
            raise DataError(folder / "instances_ids.png",
                            f"cannot read image ({type(exc).__name__})") from None
        records.append(CellRecord(folder.name, image, USIIGACI_TYPE, folder.name, height, width,
                                  idmap_path=folder / "instances_ids.png"))
    return records


def _coco_records(json_path: Path) -> list[CellRecord]:
    coco = read_coco_instances(json_path)
    records = []
    for img in coco["images"]:
        name = Path(img["file_name"])
        path = next((p for p in (json_path.parent / "images" / name, json_path.parent / name)
                     if p.is_file()), None)
        if path is None:
            raise DataError(json_path, f"image file {name} not found next to it or in images/")
        # LIVECell names files "<celltype>_Phase_<well>_..."; an explicit field wins.
        cell_type = img.get("cell_type") or name.stem.split("_")[0]
        records.append(CellRecord(name.stem, path, cell_type, str(img.get("sample_id", name.stem)),
                                  img["height"], img["width"], coco=(coco, img["id"])))
    return records


def load_records(data_dir: str | Path) -> list[CellRecord]:
    """All annotated images of a dataset folder (layout detected, see module docstring).

    Raises:
        DataError: the folder matches none of the layouts, or a file is missing/invalid.
    """
    root = Path(data_dir)
    if (root / "train.csv").is_file() and (root / "train").is_dir():
        records = _kaggle_records(root / "train.csv", root / "train")
    elif root.is_file() and root.suffix == ".json":
        records = _coco_records(root)
    elif any(root.glob("images/*/instances_ids.png")):
        records = _folder_records(root / "images")
    elif any(root.glob("*/instances_ids.png")):
        records = _folder_records(root)
    elif len(list(root.glob("*.json"))) == 1:
        records = _coco_records(next(root.glob("*.json")))
    else:
        raise DataError(root, "no train.csv + train/, COCO *.json, or "
                              "images/<name>/instances_ids.png found")
    if not records:
        raise DataError(root, "dataset holds no images")
    return records


def make_folds(records: list[CellRecord], k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index per record: stratified by cell type, grouped by sample.

    When some cell type has fewer samples than folds, stratification is impossible and the
    folds are only grouped.

    Returns:
        int64[len(records)] fold ids in ``0..k-1``.
    """
    groups = [r.group for r in records]
    if len(set(groups)) < k:
        raise ConfigError(f"{k} folds need at least {k} samples, dataset has {len(set(groups))}")
    types = [r.cell_type for r in records]
    groups_per_type = {t: len({g for g, u in zip(groups, types) if u == t}) for t in set(types)}
    if min(groups_per_type.values()) >= k:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    else:  # a rare type cannot be spread over k folds: keep the grouping, drop stratification
        splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = np.zeros(len(records), np.int64)
    for fold, (_, val_idx) in enumerate(splitter.split(np.zeros(len(records)), types, groups)):
        folds[val_idx] = fold
    return folds


def held_out_records(records: list[CellRecord], split: dict) -> list[CellRecord]:
    """The images of ``data.split.test_ids``: no member trains or validates on them and no
    ensemble fit chooses with them; ``ensemble`` scores its set-ups on them (held out).

    Raises:
        ConfigError: an id not in the dataset, or one that is also in ``val_ids``.
    """
    test_ids = {str(i) for i in split.get("test_ids") or []}
    unknown = test_ids - {r.image_id for r in records}
    if unknown:
        raise ConfigError(f"split.test_ids not in the dataset: {sorted(unknown)[:5]}")
    both = test_ids & {str(i) for i in split.get("val_ids") or []}
    if both:
        raise ConfigError(f"split.test_ids also in split.val_ids: {sorted(both)[:5]}")
    return [r for r in records if r.image_id in test_ids]


def split_records(records: list[CellRecord], split: dict
                  ) -> tuple[list[CellRecord], list[CellRecord]]:
    """(train, val) from a split config (``data.split``): ``val_ids`` when non-empty, else
    fold ``fold`` of ``k`` grouped folds shuffled with ``seed``; the held-out ``test_ids``
    (:func:`held_out_records`) are in neither."""
    held = {r.image_id for r in held_out_records(records, split)}
    records = [r for r in records if r.image_id not in held]
    if split["val_ids"]:
        val_ids = {str(i) for i in split["val_ids"]}
        unknown = val_ids - {r.image_id for r in records}
        if unknown:
            raise ConfigError(f"split.val_ids not in the dataset: {sorted(unknown)[:5]}")
        return ([r for r in records if r.image_id not in val_ids],
                [r for r in records if r.image_id in val_ids])
    folds = make_folds(records, int(split["k"]), int(split["seed"]))
    fold = int(split["fold"])
    return ([r for r, f in zip(records, folds) if f != fold],
            [r for r, f in zip(records, folds) if f == fold])


def check_cell_types(train: list[CellRecord], val: list[CellRecord], classes: list[str],
                     allow_unseen: list[str]) -> None:
    """Stop before training when a cell type cannot be learned or scored as a class.

    Every image's cell type must be one of ``classes`` (the member's class list), and every
    validation image's cell type must occur among the training images unless declared in
    ``allow_unseen``. Cell types are per image (the Kaggle ``cell_type`` column, a COCO image's
    ``cell_type`` or file-name prefix, one type for instance folders), so the counts are images;
    the instance masks carry no class of their own to check.

    Raises:
        ConfigError: ``allow_unseen`` names a type that is not a class.
        DataError: naming an image, its cell type and how many validation images have it.
    """
    bad = sorted(set(allow_unseen) - set(classes))
    if bad:
        raise ConfigError(f"data.allow_unseen: {bad} are not cell types of model.classes "
                          f"{classes}")
    for record in train + val:
        if record.cell_type not in classes:
            raise DataError(record.image_path, f"cell type {record.cell_type!r} is not one of "
                                               f"model.classes {classes}")
    seen = sorted({r.cell_type for r in train})
    unseen = [r for r in val if r.cell_type not in seen and r.cell_type not in allow_unseen]
    if unseen:
        first = unseen[0]
        n = sum(r.cell_type == first.cell_type for r in unseen)
        raise DataError(first.image_path, f"validation cell type {first.cell_type!r} ({n} "
                                          f"validation images) never occurs in the training "
                                          f"images, which hold {', '.join(seen)}; declare it in "
                                          f"data.allow_unseen to train anyway")


def image_sizes_from_folder(folder: str | Path) -> dict[str, tuple[int, int]]:
    """``{image_id: (height, width)}`` read from image headers."""
    sizes = {}
    for image_id, path in list_images(folder):
        try:
            with Image.open(path) as im:
                sizes[image_id] = (im.size[1], im.size[0])
        except OSError as exc:
            raise DataError(path, f"cannot read image header ({exc})") from None
    return sizes


def image_sizes_from_csv(path: str | Path) -> dict[str, tuple[int, int]]:
    """``{image_id: (height, width)}`` from a CSV with ``id,width,height`` columns."""
    try:
        df = pd.read_csv(path, usecols=["id", "width", "height"], dtype={"id": str})
    except (ValueError, FileNotFoundError) as exc:
        raise DataError(path, f"needs columns id,width,height ({str(exc).splitlines()[0]})"
                        ) from None
    df = df.drop_duplicates("id")
    return {i: (int(h), int(w)) for i, w, h in zip(df["id"], df["width"], df["height"])}


def standardize(image: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]`` -> float32 with zero mean and unit variance over the image.

    Phase-contrast frames are low-contrast grey (the usiigaci images span ~10 of 255 levels), so
    a fixed ``x / 255`` scaling leaves a network almost no signal.
    """
    x = image.astype(np.float32)
    return (x - x.mean()) / max(float(x.std()), 1.0)


def letterbox_scale(height: int, width: int, size: int) -> float:
    """Scale that fits an ``H x W`` image into a ``size x size`` square (YOLOX ``preproc``)."""
    return min(size / height, size / width)
