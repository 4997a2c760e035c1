"""Metrics: semantic, instance (Kaggle, COCO AP), classification, retrieval, VQA, captions."""
