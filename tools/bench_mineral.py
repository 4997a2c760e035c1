"""Benchmark RUEL-5-WV: time per 512x512 image (TPI) on CPU and the share spent voting.

The paper reports TPI 1.7 s for RUEL-5-WV on a GPU (Table 5). This script times five Res-UNet
learners (ResNet-50, LeakyReLU 0.1, random weights unless ``--runs`` names trained ones) on one
512x512 image each, followed by the weighted vote of their label maps, and prints the TPI, the
voting time, the voting share and the ratio to the paper's 1.7 s, once in float32 and once
with bfloat16 autocast on channels-last tensors (``--precision``), with the share of pixels
whose RUEL-5-WV label agrees between the two.

    OMP_NUM_THREADS=2 python tools/bench_mineral.py [--threads 2] [--repeats 3] [--runs R1 ..]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ensemblab.projects.mineral_ruel.inference import forward_logits
from ensemblab.projects.mineral_ruel.models import build_model
from ensemblab.voting import rank_weights, weighted_vote

PAPER_TPI_S = 1.7
VARIANTS = [  # five learners of different settings, as RUEL-5 combines
    dict(stn="none"), dict(stn="trained"), dict(stn="none"), dict(stn="trained"),
    dict(stn="none"),
]


def _networks(runs: list[str] | None, num_classes: int, device: torch.device):
    if runs:
        from ensemblab.projects.mineral_ruel.inference import Learner

        return [Learner(r, str(device)).module.net for r in runs]
    return [build_model(num_classes, "resunet", **v).to(device).eval() for v in VARIANTS]


@torch.inference_mode()
def bench(nets: list[torch.nn.Module], repeats: int, size: int, num_classes: int,
          device: torch.device, precision: str = "fp32") -> dict:
    """Median seconds per image: total RUEL-5-WV, inference part, voting part; the voted map."""
    if precision == "bf16":
        nets = [net.to(memory_format=torch.channels_last) for net in nets]
    image = torch.randn(1, 3, size, size, device=device,
                        generator=torch.Generator(device).manual_seed(0))
    for net in nets:  # warm-up: first calls allocate
        forward_logits(net, image, precision)
    weights = rank_weights(5)
    totals, votes = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        maps = np.stack([forward_logits(net, image, precision).argmax(1)[0].to(torch.uint8)
                         .cpu().numpy() for net in nets])
        mid = time.perf_counter()
        voted = weighted_vote(maps, weights=weights, num_classes=num_classes)
        end = time.perf_counter()
        totals.append(end - start)
        votes.append(end - mid)
    total, vote = statistics.median(totals), statistics.median(votes)
    return {"tpi_s": total, "vote_s": vote, "infer_s": total - vote, "voted": voted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions")
    parser.add_argument("--size", type=int, default=512, help="image side")
    parser.add_argument("--classes", type=int, default=9, help="number of classes")
    parser.add_argument("--runs", nargs="*", help="five trained run folders (default: random)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--precision", default="both", choices=["fp32", "bf16", "both"],
                        help="inference precision to time (default: both)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    nets = _networks(args.runs, args.classes, device)
    if len(nets) != 5:
        raise SystemExit(f"RUEL-5 needs 5 learners, got {len(nets)}")
    results = {}
    for precision in (["fp32", "bf16"] if args.precision == "both" else [args.precision]):
        r = bench(nets, args.repeats, args.size, args.classes, device, precision)
        results[precision] = r
        print(f"RUEL-5-WV on one {args.size}x{args.size} image, {args.device}, "
              f"{args.threads} threads, {precision}, median of {args.repeats}:")
        print(f"  TPI            {r['tpi_s']:.3f} s   (paper, GPU: {PAPER_TPI_S} s; "
              f"ratio ours/paper = {r['tpi_s'] / PAPER_TPI_S:.2f}; target <= 1.00)")
        print(f"  inference      {r['infer_s']:.3f} s   (5 learners, sequential)")
        print(f"  weighted vote  {r['vote_s'] * 1000:.1f} ms  = "
              f"{100 * r['vote_s'] / r['tpi_s']:.2f}% of TPI (target <= 2%)")
    if len(results) == 2:
        agree = float((results["fp32"]["voted"] == results["bf16"]["voted"]).mean())
        print(f"bf16 vs fp32: speed-up {results['fp32']['tpi_s'] / results['bf16']['tpi_s']:.2f}x, "
              f"RUEL-5-WV labels agree on {100 * agree:.2f}% of pixels")

if __name__ == "__main__":
    main()
