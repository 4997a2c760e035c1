"""Size the ssTEM CPU schedule: SE-U-Net training-step time at 256-px tiles, fp32 vs bf16.

For each width, two copies of the same initial network take the same optimizer steps (Adam,
Dice + cross-entropy, batches of real ssTEM training tiles): one in fp32, one under bf16
autocast, interleaved so machine load affects both alike. Reported per step: process CPU time
and wall time (medians after one warm-up step). The bf16 accuracy cost is shown twice: the loss
gap of the two copies after the same steps, and the fraction of validation pixels whose
predicted class changes when the fp32 copy runs under bf16 autocast. Finally the epochs that fit
``--minutes`` per run, from the CPU time divided by the thread count (the wall time of an
unloaded machine) and from the measured wall time.

    python tools/time_fre_sstem.py --data $D [--widths 0.25,0.5] [--steps 3] [--threads 1]

On a loaded machine two threads per run waste much of their CPU time waiting for each other;
one thread per run, two runs side by side, uses both cores fully.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss

from ensemblab.backbones import autocast_context
from ensemblab.projects.fre_unet.datamodule import EMTileData
from ensemblab.projects.fre_unet.se_unet import SEUNet

DICE = DiceLoss(mode="multiclass")


def _step(net, opt, x, y, bf16: bool) -> tuple[float, float, float]:
    """One optimizer step: ``(loss, process CPU seconds, wall seconds)``."""
    c0, w0 = time.process_time(), time.perf_counter()
    with autocast_context("cpu", bf16):
        logits = net(x)
    logits = logits.float()
    loss = F.cross_entropy(logits, y) + DICE(logits, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach()), time.process_time() - c0, time.perf_counter() - w0


@torch.no_grad()
def _inference(net, x) -> tuple[float, dict[str, float]]:
    """Eval-mode forward in fp32 and under bf16 autocast.

    Returns:
        ``(fraction of pixels whose argmax differs, {precision: process CPU seconds})``.
    """
    net.eval()
    preds, cpu = {}, {}
    for name in ("fp32", "bf16"):
        c0 = time.process_time()
        with autocast_context("cpu", name == "bf16"):
            preds[name] = net(x).argmax(1)
        cpu[name] = time.process_time() - c0
    net.train()
    return float((preds["fp32"] != preds["bf16"]).float().mean()), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="ssTEM stack1 folder")
    parser.add_argument("--widths", default="0.25,0.5", help="comma-separated widths")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per precision")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--minutes", type=float, default=20.0, help="target minutes per run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = EMTileData(args.data, {"format": "slices", "tile": 256, "scale": 1.0})
    data.setup()
    train, val = data.tiles["train"], data.tiles["val"]
    steps_per_epoch = -(-len(train) // args.batch)
    val_batches = -(-len(val) // args.batch)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randperm(len(train), generator=gen)[: args.batch]
               for _ in range(args.steps + 1)]
    print(f"{len(train)} train tiles ({steps_per_epoch} steps of {args.batch}), {len(val)} val "
          f"tiles, {args.threads} threads; medians of {args.steps} steps after a warm-up")
    for width in (float(w) for w in args.widths.split(",")):
        torch.manual_seed(0)
        nets = {"fp32": SEUNet(width=width)}
        nets["bf16"] = copy.deepcopy(nets["fp32"])
        opts = {k: torch.optim.Adam(n.parameters(), lr=1e-3) for k, n in nets.items()}
        rows: dict[str, list[tuple[float, float, float]]] = {"fp32": [], "bf16": []}
        for idx in batches:
            x, y = train.images[idx], train.labels[idx]
            for name in ("fp32", "bf16"):
                rows[name].append(_step(nets[name], opts[name], x, y, bf16=name == "bf16"))
        changed, infer_cpu = _inference(nets["fp32"], val.images[: args.batch])
        med = {k: (statistics.median(r[1] for r in v[1:]), statistics.median(r[2] for r in v[1:]))
               for k, v in rows.items()}
        print(f"width {width:g} ({nets['fp32'].deep_channels} deep channels):")
        for name, (cpu, wall) in med.items():
            val_cpu = val_batches * infer_cpu[name]
            epoch_ideal = (steps_per_epoch * cpu + val_cpu) / args.threads
            epoch_wall = steps_per_epoch * wall + val_cpu * wall / cpu
            budget = 60 * args.minutes
            print(f"  {name}: step {cpu:6.2f} s cpu {wall:6.2f} s wall | epoch "
                  f"{epoch_ideal:6.0f} s at cpu/{args.threads} ({budget / epoch_ideal:5.1f} "
                  f"epochs in {args.minutes:g} min), {epoch_wall:6.0f} s at measured wall "
                  f"({budget / epoch_wall:5.1f} epochs)")
        losses = {k: [round(r[0], 4) for r in v] for k, v in rows.items()}
        print(f"  losses fp32 {losses['fp32']}  bf16 {losses['bf16']}")
        print(f"  bf16 speed-up {med['fp32'][0] / med['bf16'][0]:.2f}x cpu, "
              f"{med['fp32'][1] / med['bf16'][1]:.2f}x wall; val pixels whose class changes "
              f"under bf16: {100 * changed:.3f} %; val batch forward "
              f"{infer_cpu['fp32']:.2f} s cpu fp32, {infer_cpu['bf16']:.2f} s bf16")


if __name__ == "__main__":
    main()
