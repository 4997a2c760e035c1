"""Same as ``ensemblab battery_crystal train ARGS`` (detectron2-style per-project script)."""
import sys

from ensemblab.cli import main

if __name__ == "__main__":
    sys.exit(main(["battery_crystal", "train", *sys.argv[1:]]))
