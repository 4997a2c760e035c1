"""Cell image segmentation by the Feature Random Enhancement module (SE-U-Net + FRE).

Modules: :mod:`.fre` (the FRE module), :mod:`.se_unet` (SE-U-Net and its variants),
:mod:`.data` / :mod:`.datamodule` (slices, pinned label maps, tiles), :mod:`.module`
(Lightning training), :mod:`.magnitude` (feature-magnitude tracking, Figs. 2/9),
:mod:`.commands` (the verbs: train / evaluate / predict / magnitudes), :mod:`.search` (TPE),
:mod:`.report`, :mod:`.cli` (argument parsing), :mod:`.demo`.
"""

# The split results are reported on (the paper's pinned test slices): val picks the checkpoint.
# Defined in the package so the CLI parser reads it without importing the data code.
HELD_OUT_SPLIT = "test"

# What this project writes in the run record (``RUN/run.json``, :mod:`ensemblab.run_record`).
PROJECT = "fre_unet"
MODEL = "model"  # one trained run (train, a search trial)
SEEDS = "seeds"  # a folder of one run per seed (train --seeds), scored as mean ± std
# A multi-seed folder without a run record is known by its seed runs.
SEEDS_MARKERS = {"*/config.yaml": SEEDS}
