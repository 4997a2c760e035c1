"""Sartorius neuronal cell instance segmentation (paper: "High-Precision Neuronal Segmentation:
An Ensemble of YOLOX, Mask R-CNN, and UPerNet"): data, the members (``members/``), their
ensemble (``ensemble/``), post-processing, the Kaggle score and submissions."""
