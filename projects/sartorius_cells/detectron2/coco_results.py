"""COCO results JSON of a detector's own outputs (detectron2's ``coco_instances_results.json``).

One record per instance, as detectron2's ``instances_to_coco_json`` writes them:
``image_id``, ``category_id``, ``bbox`` ``[x, y, width, height]`` in pixels of the original
image, ``score``, and ``segmentation`` as a compressed COCO RLE (pycocotools, column-major)
of the mask thresholded at 0.5. No Kaggle post-processing (no overlap removal, no tuned
thresholds): the file feeds ``pycocotools.COCOeval`` or other COCO tools.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ensemblab.data.rle import mask_to_coco_rle
from ensemblab.io import write_json
from ensemblab.projects.sartorius_cells.structures import Instances

RESULTS_FILE = "coco_instances_results.json"


def coco_image_id(image_id: str) -> int | str:
    """COCO ids are integers: a numeric file stem becomes one; other ids stay strings."""
    return int(image_id) if image_id.isdigit() else image_id


def instances_to_coco(image_id: int | str, inst: Instances,
                      category_ids: dict[int, int] | None = None, mask_thresh: float = 0.5
                      ) -> list[dict]:
    """COCO result records of one image's instances.

    Args:
        image_id: the image's COCO id.
        inst: instances in original-image pixels (``labels`` 1-based).
        category_ids: label -> COCO category id (default: the label itself).
        mask_thresh: probability threshold of the masks.
    """
    records = []
    for i in range(len(inst)):
        x0, y0, x1, y1 = (float(v) for v in inst.boxes[i])
        label = int(inst.labels[i])
        records.append({
            "image_id": image_id,
            "category_id": int(category_ids[label]) if category_ids else label,
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "score": float(inst.scores[i]),
            "segmentation": mask_to_coco_rle(inst.full_mask(i, mask_thresh)),
        })
    return records


def write_coco_results(path: str | Path, predictions: Iterable[tuple[str, Instances]],
                       category_ids: dict[int, int] | None = None) -> int:
    """Write ``[(image_id, Instances), ...]`` as one COCO results JSON; returns the record count.

    Args:
        path: the JSON file to write.
        predictions: per image, its id (file stem) and its instances.
        category_ids: label -> COCO category id (default: the label itself).
    """
    records = []
    for image_id, inst in predictions:
        records += instances_to_coco(coco_image_id(image_id), inst, category_ids)
    write_json(path, records)
    return len(records)
