"""Tabular preprocessing, the DNN classifier and classical baselines."""
