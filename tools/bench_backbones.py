"""Encoder speed and memory on this CPU, fp32 vs bf16: ``python tools/bench_backbones.py``.

For each encoder at 512x512 (batch 1, ``torch.get_num_threads()`` threads): parameters, forward
ms and forward+backward ms in fp32 and under bf16 autocast, the bf16/fp32 step-time ratio, and
the peak resident memory of a child process that builds the encoder and runs one training step.
Then what bf16 costs in accuracy: top-1 agreement and mean top-1 probability change of the
ImageNet classifiers between fp32 and bf16 on real photos (``$ENSEMBLAB_DATA/vl/flickr8k``, or
random-noise images when it is absent), and the relative error of the encoder's deepest map.

Options: ``--size 512 --repeats 5 --encoders efficientnet_lite0 ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from ensemblab.backbones import (
    autocast_context,
    bf16_supported,
    create_encoder,
    imagenet_classifier,
)
from ensemblab.memory import peak_rss_bytes

DEFAULT = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50"]


def _best_ms(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def measure(name: str, size: int, repeats: int) -> dict:
    """Timings of one encoder (run in a child process so peak RSS is its own)."""
    enc = create_encoder(name, pretrained=name.startswith("efficientnet"))
    x = torch.rand(1, 3, size, size)
    row = {"encoder": name, "params_M": sum(p.numel() for p in enc.parameters()) / 1e6}
    for tag, bf16 in (("fp32", False), ("bf16", True)):
        def forward(bf16=bf16):
            with torch.no_grad(), autocast_context("cpu", bf16):
                enc.eval()(x)

        def step(bf16=bf16):
            enc.train()
            with autocast_context("cpu", bf16):
                loss = sum(f.float().mean() for f in enc(x))
            loss.backward()

        row[f"fwd_ms_{tag}"] = _best_ms(forward, repeats)
        row[f"step_ms_{tag}"] = _best_ms(step, repeats)
    row["peak_rss_MiB"] = peak_rss_bytes() / 2**20
    return row


def bf16_accuracy(names: list[str]) -> list[dict]:
    """fp32 vs bf16 classifier agreement on real photos (or noise without the data)."""
    from ensemblab.backbones.check import load_photo

    root = os.environ.get("ENSEMBLAB_DATA")
    photos = sorted(Path(root, "vl/flickr8k/images").glob("*.jpg"))[:40] if root else []
    rows = []
    for name in names:
        if not name.startswith("efficientnet"):
            continue
        model = imagenet_classifier(name)
        x = (torch.cat([load_photo(p, model.input_size) for p in photos]) if photos
             else torch.rand(16, 3, model.input_size, model.input_size))
        with torch.inference_mode():
            p32 = model(x).softmax(-1)
            with autocast_context("cpu", True):
                p16 = model(x).float().softmax(-1)
        top32, top16 = p32.argmax(-1), p16.argmax(-1)
        rows.append({"encoder": name, "images": len(x),
                     "top1_agreement": float((top32 == top16).float().mean()),
                     "top1_prob_change": float((p32.max(-1).values
                                                - p16.gather(1, top32[:, None])[:, 0]).abs()
                                               .mean())})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--encoders", nargs="*", default=DEFAULT)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.size, args.repeats)))
        return 0
    print(f"threads {torch.get_num_threads()}, bf16 native: {bf16_supported('cpu')}, "
          f"input 1x3x{args.size}x{args.size}")
    print(f"{'encoder':<20}{'params M':>9}{'fwd fp32':>10}{'fwd bf16':>10}{'step fp32':>11}"
          f"{'step bf16':>11}{'bf16/fp32':>10}{'peak MiB':>10}")
    for name in args.encoders:
        out = subprocess.run([sys.executable, __file__, "--one", name, "--size", str(args.size),
                              "--repeats", str(args.repeats)], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name:<20} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:<20}{r['params_M']:>9.2f}{r['fwd_ms_fp32']:>10.0f}{r['fwd_ms_bf16']:>10.0f}"
              f"{r['step_ms_fp32']:>11.0f}{r['step_ms_bf16']:>11.0f}"
              f"{r['step_ms_bf16'] / r['step_ms_fp32']:>10.2f}{r['peak_rss_MiB']:>10.0f}")
    print("bf16 accuracy cost (ImageNet classifiers, fp32 vs bf16 autocast):")
    for r in bf16_accuracy(args.encoders):
        print(f"  {r['encoder']:<20} {r['images']} images: top-1 agreement "
              f"{r['top1_agreement']:.3f}, mean |change| of top-1 probability "
              f"{r['top1_prob_change']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
