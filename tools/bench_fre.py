"""Benchmark: FRE's cost on a training step (paper: negligible) and on inference (none).

Times the same SE-U-Net with and without the FRE module, interleaving the two so machine load
affects both alike, and reports medians. On a shared machine the CPU time of the (single)
compute thread is the stable measure; wall time is printed beside it.

    OMP_NUM_THREADS=1 python tools/bench_fre.py [--width 0.25] [--size 128] [--batch 4]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from ensemblab.projects.fre_unet.se_unet import SEUNet


def _timed(fn) -> tuple[float, float]:
    c0, w0 = time.thread_time(), time.perf_counter()
    fn()
    return time.thread_time() - c0, time.perf_counter() - w0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--B", type=int, default=8)
    parser.add_argument("--X", type=float, default=250.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    fre_net = SEUNet(width=args.width, fre={"num_enhanced": args.B, "factor": args.X})
    plain = copy.deepcopy(fre_net)
    plain.fre = None
    x = torch.rand(args.batch, 1, args.size, args.size)
    y = torch.randint(0, 4, (args.batch, args.size, args.size))
    opts = {id(n): torch.optim.SGD(n.parameters(), lr=1e-6) for n in (fre_net, plain)}

    def train_step(net):
        net.train()
        loss = F.cross_entropy(net(x), y)
        opts[id(net)].zero_grad()
        loss.backward()
        opts[id(net)].step()

    @torch.no_grad()
    def infer(net):
        net.eval()
        net(x)

    results = {}
    for label, fn in (("train step", train_step), ("inference", infer)):
        for net in (fre_net, plain):
            fn(net)  # warm-up
        times = {"fre": [], "plain": []}
        for _ in range(args.reps):
            for name, net in (("fre", fre_net), ("plain", plain)):
                times[name].append(_timed(lambda net=net, fn=fn: fn(net)))
        med = {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v))
               for k, v in times.items()}
        results[label] = med
        print(f"{label:10s}  plain {1e3 * med['plain'][0]:8.1f} ms cpu "
              f"({1e3 * med['plain'][1]:8.1f} wall)   FRE {1e3 * med['fre'][0]:8.1f} ms cpu "
              f"({1e3 * med['fre'][1]:8.1f} wall)"
              f"   ratio cpu {med['fre'][0] / med['plain'][0]:.4f} "
              f"wall {med['fre'][1] / med['plain'][1]:.4f}")
    deep = torch.randn(args.batch, fre_net.deep_channels, args.size // 16, args.size // 16,
                       requires_grad=True)
    fre_net.fre.train()
    op = statistics.median(_timed(lambda: fre_net.fre(deep).sum().backward())[0]
                           for _ in range(50))
    step = results["train step"]["plain"][0]
    print(f"FRE op alone (forward+backward on [{args.batch}, {fre_net.deep_channels}, "
          f"{args.size // 16}, {args.size // 16}]): {1e3 * op:.3f} ms cpu = "
          f"{100 * op / step:.2f}% of a training step")
    # The two nets were trained apart above; compare FRE against a copy of itself without it.
    stripped = copy.deepcopy(fre_net).eval()
    stripped.fre = None
    with torch.no_grad():
        same = torch.equal(fre_net.eval()(x), stripped(x))
    print(f"inference outputs bitwise equal with/without FRE: {same}; "
          f"eval-mode FRE returns its input object: {fre_net.fre(deep) is deep}")


if __name__ == "__main__":
    main()
