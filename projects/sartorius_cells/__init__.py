"""Sartorius neuronal cell instance segmentation (paper: "High-Precision Neuronal Segmentation:
An Ensemble of YOLOX, Mask R-CNN, and UPerNet"): data, Mask R-CNN member, post-processing,
Kaggle score and submission (part 1); YOLOX, UPerNet and the ensemble (part 2)."""
