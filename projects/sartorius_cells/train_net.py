"""Forwarder for users who expect per-project scripts: ``python train_net.py --config ...``."""
import sys

from ensemblab.cli import main

sys.exit(main(["sartorius_cells", "train", *sys.argv[1:]]))
