"""Forwarder: ``python projects/battery_crystal/train_net.py ARGS`` = ``ensemblab battery_crystal train ARGS``."""
import sys

from ensemblab.cli import main

if __name__ == "__main__":
    sys.exit(main(["battery_crystal", "train", *sys.argv[1:]]))
