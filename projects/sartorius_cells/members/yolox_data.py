"""Cell boxes as a YOLOX dataset, so YOLOX's own mosaic / mixup / affine pipeline can be reused,
and the grey levels the YOLOX member sees.

:class:`CellBoxSource` is the minimal ``yolox.data.datasets.Dataset`` that
``yolox.data.MosaicDetection`` wraps: ``pull_item(i) -> (image uint8[H,W,3], labels float[K,5]
(x0, y0, x1, y1, class), (H, W), i)`` and ``load_anno(i)``. Images are resized once (longer
side = ``size``) and kept in memory with their boxes, which the cell datasets (tens to hundreds
of images) afford; ground-truth masks are read once, only to get the boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from yolox.data import MosaicDetection, TrainTransform
from yolox.data.datasets import Dataset as YoloxDataset

from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells.data import letterbox_scale, standardize
from ensemblab.projects.sartorius_cells.structures import masks_to_boxes

PAD_LEVEL = 114  # YOLOX's letterbox / mosaic fill value
SPREAD = 40.0  # grey levels per standard deviation after per-image standardisation
INPUT_NORMS = ("image", "fixed")


def input_levels(image: np.ndarray, input_norm: str = "image") -> np.ndarray:
    """The uint8 ``[H, W]`` grey levels YOLOX sees (it takes raw 0-255 input).

    ``image``: each image standardised by its own mean and standard deviation, then mapped to
    ``PAD_LEVEL + SPREAD * z`` (the mean lands on YOLOX's fill level, +-2.8 standard deviations
    fit in 0-255), so low-contrast phase frames reach the network at full scale, as they do
    for the Mask R-CNN and UPerNet members; ``fixed``: the raw grey levels (YOLOX's own way).
    """
    if input_norm == "fixed":
        return np.ascontiguousarray(image)
    if input_norm not in INPUT_NORMS:
        raise ConfigError(f"model.input_norm {input_norm!r}: expected one of {INPUT_NORMS}")
    return np.clip(PAD_LEVEL + SPREAD * standardize(image), 0, 255).round().astype(np.uint8)


@dataclass
class BoxSample:
    """One image and its instance boxes.

    Attributes:
        image: uint8 ``[H, W]`` grayscale.
        boxes: float32 ``[N, 4]`` (x0, y0, x1, y1) pixels.
        cls: 0-based class index of every box (the image's cell type).
        image_id: name used in logs.
    """

    image: np.ndarray
    boxes: np.ndarray
    cls: int
    image_id: str


def samples_from_records(records, type_labels: dict[str, int]) -> list[BoxSample]:
    """Read images and ground-truth boxes of ``CellRecord`` objects.

    Args:
        records: ``CellRecord`` objects (``load_image()``, ``load_masks()``, ``cell_type``).
        type_labels: cell type -> 1-based label (``data.cell_type_labels``).
    """
    samples = []
    for rec in records:
        masks = rec.load_masks()
        boxes = masks_to_boxes(masks)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        samples.append(BoxSample(rec.load_image(), boxes[keep], type_labels[rec.cell_type] - 1,
                                 rec.image_id))
    return samples


class CellBoxSource(YoloxDataset):
    """In-memory images + boxes resized so the longer side is ``size`` (3 equal channels),
    grey levels per ``input_norm`` (:func:`input_levels`)."""

    def __init__(self, samples: list[BoxSample], size: int, input_norm: str = "image"):
        super().__init__((size, size), mosaic=False)
        self.images, self.annos = [], []
        for s in samples:
            r = letterbox_scale(*s.image.shape[:2], size)
            h, w = round(s.image.shape[0] * r), round(s.image.shape[1] * r)
            img = cv2.resize(input_levels(s.image, input_norm), (w, h),
                             interpolation=cv2.INTER_LINEAR)
            self.images.append(np.repeat(img[:, :, None], 3, axis=2))
            anno = np.zeros((len(s.boxes), 5), dtype=np.float32)
            anno[:, :4] = s.boxes * r
            anno[:, 4] = s.cls
            self.annos.append(anno)

    def __len__(self) -> int:
        return len(self.images)

    def load_anno(self, index: int) -> np.ndarray:
        """Boxes + class ``[K, 5]`` of image ``index``."""
        return self.annos[index]

    def pull_item(self, index: int):
        """``(image uint8[H, W, 3], labels float[K, 5], (H, W), index)``; copies are returned
        because YOLOX's augmentations write in place."""
        img = self.images[index]
        return img.copy(), self.annos[index].copy(), img.shape[:2], index


def build_train_dataset(samples: list[BoxSample], size: int, aug: dict,
                        input_norm: str = "image") -> MosaicDetection:
    """YOLOX's mosaic + mixup + random-affine training set over ``samples``.

    Args:
        samples: training images and boxes.
        size: square network input side (multiple of 32).
        aug: ``mosaic_prob, mixup_prob, enable_mixup, degrees, translate, shear, mosaic_scale,
            mixup_scale, flip_prob, hsv_prob, max_labels`` (see
            ``configs/members/paper_yolox_l.yaml``).
        input_norm: grey levels (:func:`input_levels`).

    Returns:
        Dataset yielding ``(image float[3, S, S] in 0..255, labels float[max_labels, 5]
        (class, cx, cy, w, h), info, id)``; set ``.enable_mosaic = False`` to close mosaic.
    """
    source = CellBoxSource(samples, size, input_norm)
    return MosaicDetection(
        dataset=source, img_size=(size, size), mosaic=True,
        preproc=TrainTransform(max_labels=int(aug["max_labels"]), flip_prob=aug["flip_prob"],
                               hsv_prob=aug["hsv_prob"]),
        degrees=aug["degrees"], translate=aug["translate"],
        mosaic_scale=tuple(aug["mosaic_scale"]), mixup_scale=tuple(aug["mixup_scale"]),
        shear=aug["shear"], enable_mixup=aug["enable_mixup"],
        mosaic_prob=aug["mosaic_prob"], mixup_prob=aug["mixup_prob"],
    )
