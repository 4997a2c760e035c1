"""detectron2 Mask R-CNN checkpoints without detectron2: config and checkpoint import, a
compatibility-mode model that reproduces detectron2's inference, export back to detectron2,
and COCO results files."""
