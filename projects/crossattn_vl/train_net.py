"""Forward to ``ensemblab crossattn_vl train`` (detectron2-style per-project script)."""
import sys

from ensemblab.cli import main

sys.exit(main(["crossattn_vl", "train", *sys.argv[1:]]))
