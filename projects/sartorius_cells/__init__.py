"""Sartorius neuronal cell instance segmentation (paper: "High-Precision Neuronal Segmentation:
An Ensemble of YOLOX, Mask R-CNN, and UPerNet"): data, the members (``members/``), their
ensemble (``ensemble/``), post-processing, the Kaggle score and submissions."""

# What this project writes in the run record (``RUN/run.json``, :mod:`ensemblab.run_record`).
PROJECT = "sartorius_cells"
MEMBER = "member"  # a member's run folder (train, import-detectron2), of any model.kind
ENSEMBLE = "ensemble"  # an ensemble output folder (scores, fitted manifest)
