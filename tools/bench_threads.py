"""Two jobs on a shared machine: per-step time of a Mask R-CNN training step by thread count.

A training job runs Mask R-CNN steps (the ``cpu_maskrcnn_r18`` member at 320 px, batch 2, on
synthetic cells) while a second, single-thread job runs the same steps beside it. The job is
measured alone and beside the other, with ``--threads`` equal to the cores and with one thread.
It prints the median seconds per step of each case and the ratios; the README's "Running on a
shared machine" paragraph quotes them.

    python tools/bench_threads.py [--steps 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

STEP_CODE = r"""
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from ensemblab.config import load_config
from ensemblab.projects.sartorius_cells.commands import resolve_config
from ensemblab.projects.sartorius_cells.members.maskrcnn import model_from_config
from ensemblab.synthetic.cells import make_cells_image

cfg = load_config(resolve_config("cpu_maskrcnn_r18"), ["model.classes=[cort]"])
torch.manual_seed(0)
model = model_from_config(cfg["model"], pretrained=False).train()
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
images, targets = [], []
for seed in range(2):
    image, ids = make_cells_image(seed, "cort", height=320, width=320, n_cells=12)
    masks = torch.stack([torch.from_numpy(ids == k) for k in range(1, int(ids.max()) + 1)])
    boxes = torch.stack([torch.tensor([m.nonzero()[:, 1].min(), m.nonzero()[:, 0].min(),
                                       m.nonzero()[:, 1].max() + 1, m.nonzero()[:, 0].max() + 1],
                                      dtype=torch.float32) for m in masks])
    images.append(torch.from_numpy(image).float()[None] / 255)
    targets.append({"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64),
                    "masks": masks.to(torch.uint8)})
steps = int(sys.argv[2])  # 0: run until killed (the job beside)
k = 0
while steps == 0 or k < steps + 1:
    start = time.perf_counter()
    loss = sum(model(images, targets).values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    if k:  # the first step builds caches
        print(f"STEP {time.perf_counter() - start:.4f}", flush=True)
    k += 1
"""


def run_job(threads: int, steps: int) -> float:
    """Median seconds per step of one job with ``threads`` threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", STEP_CODE, str(threads), str(steps)],
                         capture_output=True, text=True, env=env, check=True).stdout
    return statistics.median(float(x.split()[1]) for x in out.splitlines()
                             if x.startswith("STEP"))


def beside(threads: int, steps: int) -> float:
    """The same, while a single-thread job runs the same steps beside it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    other = subprocess.Popen([sys.executable, "-c", STEP_CODE, "1", "0"],
                             stdout=subprocess.DEVNULL, env=env)
    try:
        time.sleep(15)  # the other job is past its imports and stepping
        return run_job(threads, steps)
    finally:
        other.kill()
        other.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = [(f"alone, {cores} threads", run_job(cores, args.steps)),
            ("alone, 1 thread", run_job(1, args.steps)),
            (f"beside a 1-thread job, {cores} threads", beside(cores, args.steps)),
            ("beside a 1-thread job, 1 thread", beside(1, args.steps))]
    print(f"Mask R-CNN (cpu_maskrcnn_r18, 320 px, batch 2) training step, {cores} cores, "
          f"median of {args.steps} steps:")
    for name, seconds in rows:
        print(f"  {name:<36} {seconds:6.2f} s/step")
    print(f"  beside another job: {cores} threads / 1 thread = {rows[2][1] / rows[3][1]:.1f}x")


if __name__ == "__main__":
    main()
