"""One sub-package per paper: ``ensemblab.projects.<name>``."""
