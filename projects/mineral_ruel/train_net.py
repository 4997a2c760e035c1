"""Forwarder for users who expect a per-project script: ``python train_net.py --config ...``."""
import sys

from ensemblab.cli import main

if __name__ == "__main__":
    sys.exit(main(["mineral_ruel", "train", *sys.argv[1:]]))
