"""Data codecs, readers with validation, tiling.

- :mod:`.rle`: Kaggle RLE (row-major, 1-based) and pycocotools RLE (column-major) codecs,
  instance-id maps <-> mask stacks.
- :mod:`.kaggle`: Kaggle Sartorius ``train.csv`` reader/writer.
- :mod:`.images`: images (8/16-bit, gray/RGB), class-index PNGs, TIFF stacks, image/mask pairs.
- :mod:`.coco`: COCO instance JSON.
- :mod:`.tables`: CSV tables against a schema.
- :mod:`.tiling`: overlapping tiles and stitching.
"""

from ensemblab.data.coco import (
    coco_annotation_masks,
    group_annotations,
    mask_annotation,
    read_coco_instances,
    write_coco_instances,
)
from ensemblab.data.images import (
    list_pairs,
    read_image,
    read_label_png,
    read_tiff_stack,
    write_png,
)
from ensemblab.data.kaggle import KaggleImage, read_kaggle_csv, write_kaggle_csv
from ensemblab.data.rle import (
    coco_rle_to_kaggle,
    coco_rle_to_mask,
    instance_map_to_masks,
    instance_map_to_rles,
    kaggle_to_coco_rle,
    mask_to_coco_rle,
    masks_to_instance_map,
    rle_decode,
    rle_encode,
    rle_to_indices,
)
from ensemblab.data.tables import read_table
from ensemblab.data.tiling import extract_tiles, stitch_tiles, tile_boxes

__all__ = [
    "KaggleImage",
    "coco_annotation_masks",
    "coco_rle_to_kaggle",
    "coco_rle_to_mask",
    "extract_tiles",
    "group_annotations",
    "instance_map_to_masks",
    "instance_map_to_rles",
    "kaggle_to_coco_rle",
    "list_pairs",
    "mask_annotation",
    "mask_to_coco_rle",
    "masks_to_instance_map",
    "read_coco_instances",
    "read_image",
    "read_kaggle_csv",
    "read_label_png",
    "read_table",
    "read_tiff_stack",
    "rle_decode",
    "rle_encode",
    "rle_to_indices",
    "stitch_tiles",
    "tile_boxes",
    "write_coco_instances",
    "write_kaggle_csv",
    "write_png",
]
