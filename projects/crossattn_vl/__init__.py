"""Cross-Attention Transformer-Based Visual-Language Fusion for Multimodal Image Analysis.

DenseNet121 + CBAM image regions, ALBERT text tokens, bidirectional cross-attention, concat +
linear fusion, and heads for captioning, image-text matching and VQA. Reusable parts live in
:mod:`ensemblab.multimodal`; this package holds the data formats, the network assembly, the
Lightning module, the CLI verbs (train/evaluate/predict/ablate) and the demo.
"""

# What this project writes in the run record (``RUN/run.json``, :mod:`ensemblab.run_record`).
PROJECT = "crossattn_vl"
MODEL = "model"  # one trained model's run folder (train, each ablation variant and seed)
