"""Synthetic, deterministic, learnable datasets for every project, written in real formats."""
