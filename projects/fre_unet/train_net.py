"""``python projects/fre_unet/train_net.py ARGS`` is ``ensemblab fre_unet train ARGS``."""
import sys

from ensemblab.cli import main

if __name__ == "__main__":
    sys.exit(main(["fre_unet", "train", *sys.argv[1:]]))
