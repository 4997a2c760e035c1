"""How fast every paper-scale schedule trains and predicts on this machine, in a few minutes.

    python tools/gpu_check.py [--device cuda|cpu] [--steps 100] [--budget-s 480]
        [--only PROJECT ...] [--smoke]

1. Training: each installed project (the ``ensemblab.projects`` entry points) with a check
   registered in ``tools/gpu_check_*.py`` builds its paper-scale model and loader with its own
   train function on synthetic data of the real shapes, and ``--steps`` steps run through
   ``ensemblab.engine.build_trainer`` with the project's trainer settings and the engine's
   defaults (16-mixed on GPU unless the config asks for bf16, float32 on CPU; channels-last for
   the convolutional members on GPU), without validation or checkpoints. One line per member:
   step time (the first step is a warm-up), images (or tiles, crops, rows) per second, peak
   memory (GPU, or resident set on CPU) and the projected wall time of the paper's full
   schedule (training steps only).
2. Inference: one line per member, then the Sartorius set-up 3 ensemble and RUEL-5-WV.
3. DDP: ``ensemblab.engine.ddp_smoke`` on all visible GPUs with NCCL (one process when there is
   one GPU), or two gloo processes with ``--device cpu``.

Every part prints its own line; a failing part prints ``error`` and the run goes on (exit 1 at
the end). Parts that would start after ``--budget-s`` print ``skipped``; a training part stops
early at the budget. ``--smoke`` shrinks images and batches (the CPU test runs it): each
check (and each Sartorius member kind, ``MemberKind.smoke_overrides``) carries its own sizes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))  # tools/ is not a package
from gpu_check_members import CHECKS, Context, Member  # noqa: E402

from ensemblab.engine import build_trainer  # noqa: E402
from ensemblab.installed_projects import installed_projects  # noqa: E402
from ensemblab.memory import peak_bytes, reset_peak  # noqa: E402

# Every gpu_check_*.py module registers its projects' checks in CHECKS when imported.
for _module in sorted(TOOLS.glob("gpu_check_*.py")):
    importlib.import_module(_module.stem)

# One line per part: Lightning's banners and the warnings of a deliberately bare fit (no
# validation loader, frozen modules in eval mode) would bury them.
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
for message in (".*validation_step.*", ".*in eval mode.*", ".*LeafSpec.*", ".*autocast.*"):
    warnings.filterwarnings("ignore", message=message)

# build_trainer keywords that only matter for a real run (validation, checkpoint choice, UI),
# and the callbacks that act on validation or write checkpoints.
RUN_ONLY = {"monitor", "mode", "device", "progress_bar", "num_sanity_val_steps",
            "check_val_every_n_epoch"}
RUN_ONLY_CALLBACKS = (EarlyStopping, ModelCheckpoint)


class Report:
    """Prints one line per part, keeps the budget and counts failures."""

    def __init__(self, budget_s: float):
        self.deadline = time.perf_counter() + budget_s
        self.failures = 0

    def part(self, kind: str, name: str, fn) -> object:
        """Run ``fn()`` (returns ``(line, value)``) unless the budget is spent; print a line."""
        if time.perf_counter() > self.deadline:
            print(f"{kind:6s} {name}: skipped (budget spent)", flush=True)
            return None
        try:
            line, value = fn()
        except Exception as exc:  # one part's failure must not hide the others' figures
            self.failures += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            print(f"{kind:6s} {name}: error {type(exc).__name__}: {str(exc).splitlines()[0]} "
                  f"({Path(where.filename).name}:{where.lineno})", flush=True)
            return None
        print(f"{kind:6s} {name}: {line}", flush=True)
        return value


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def peak(device: torch.device) -> str:
    """The peak since :func:`ensemblab.memory.reset_peak`: GPU allocations or resident set."""
    what = "GPU" if device.type == "cuda" else "RSS"
    return f"peak {what} {peak_bytes(device) / 2**30:.2f} GiB"


def duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class StepTimer(Callback):
    """End time of every training step (synchronised on GPU) and the items in its batch; asks
    the trainer to stop once ``deadline`` has passed."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.ends: list[float] = []
        self.items: list[int] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.ends = [_clock(pl_module.device)]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(_clock(pl_module.device))
        first = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
        self.items.append(len(first))
        if time.perf_counter() > self.deadline and len(self.items) >= 2:
            trainer.should_stop = True

    def mean_step(self) -> tuple[float, float]:
        """``(seconds, items)`` per step, without the first (warm-up) step when there are more."""
        gaps, items = np.diff(self.ends), np.array(self.items, float)
        if len(gaps) > 1:
            gaps, items = gaps[1:], items[1:]
        return float(gaps.mean()), float(items.mean())


def lightning_steps(member: Member, ctx: Context, deadline: float) -> tuple[float, float, str]:
    """Train ``member`` for ``ctx.steps`` steps; ``(s/step, items/step, settings)``."""
    kwargs = {k: v for k, v in member.trainer_kwargs.items() if k not in RUN_ONLY}
    cuda = ctx.device.type == "cuda"
    if member.channels_last and cuda:
        member.module.to(memory_format=torch.channels_last)
    timer = StepTimer(deadline)
    run_dir = ctx.tmp / "runs" / member.name.split()[0].replace("/", "_")
    trainer = build_trainer(run_dir, device=ctx.device.type, progress_bar=False,
                            max_steps=ctx.steps, limit_val_batches=0, num_sanity_val_steps=0,
                            callbacks=[timer, *kwargs.pop("callbacks", ())], **kwargs)
    # No validation, so no early stopping; no checkpoint writes: the check measures steps.
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, RUN_ONLY_CALLBACKS)]
    try:
        trainer.fit(member.module, train_dataloaders=member.train_loader,
                    datamodule=member.datamodule)
    finally:  # free the device for the next part, also after a failure
        member.module.trainer = None  # let the optimizer state go
        member.module.cpu()
    step, items = timer.mean_step()
    layout = ", channels-last" if member.channels_last and cuda else ""
    return step, items, f"{trainer.precision}{layout}, {len(timer.items)} steps"


def build_part(project: str, ctx: Context):
    if project not in CHECKS:
        return "no check registered for it in tools/gpu_check_*.py", []
    start = time.perf_counter()
    members = CHECKS.get(project)(ctx)
    return f"{len(members)} to check, {time.perf_counter() - start:.1f} s", members


def train_part(member: Member, ctx: Context, deadline: float):
    reset_peak(ctx.device)
    if member.fit_steps is not None:
        step = member.fit_steps(ctx.steps) / ctx.steps
        items, settings = member.schedule.samples, f"cpu float32, {ctx.steps} steps"
    else:
        step, items, settings = lightning_steps(member, ctx, deadline)
    s, rate = member.schedule, items / step
    total = s.epochs * s.samples / rate
    return (f"step {step:.4g} s | {rate:.4g} {s.unit}/s | {peak(ctx.device)} | paper schedule "
            f"{s.epochs} ep x {s.samples} {s.unit}: {duration(total)} | {settings}"), None


def infer_part(member: Member, ctx: Context, repeats: int):
    if member.network is not None:
        member.network.to(ctx.device).eval()
    reset_peak(ctx.device)
    try:
        with torch.inference_mode():
            if not ctx.smoke:
                member.infer(ctx.device)  # warm-up: allocations, cuDNN algorithm choice
            start = _clock(ctx.device)
            items = sum(member.infer(ctx.device) for _ in range(repeats))
            seconds = (_clock(ctx.device) - start) / repeats
    finally:
        if member.network is not None:
            member.network.cpu()
    return (f"{seconds:.4g} s/call | {items / repeats / seconds:.4g} {member.infer_unit}/s | "
            f"{peak(ctx.device)}"), None


def ddp_part(ctx: Context, deadline: float):
    """``ensemblab.engine.ddp_smoke`` in a fresh process (Lightning re-launches it per rank)."""
    n = torch.cuda.device_count() if ctx.device.type == "cuda" else 2
    backend = "nccl" if ctx.device.type == "cuda" else "gloo"
    out = ctx.tmp / "ddp"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ensemblab.engine.ddp_smoke", "--out", str(out),
         "--device", ctx.device.type, "--devices", str(n)],
        capture_output=True, text=True, timeout=max(60.0, deadline - time.perf_counter()))
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"ddp_smoke exited {proc.returncode}: {tail}")
    result = json.loads((out / "ddp_smoke.json").read_text())
    summed = np.sum(np.array(result["local"]), axis=0)
    if not np.array_equal(np.array(result["reduced"]), summed):
        raise RuntimeError("the reduced confusion matrix is not the sum of the ranks' matrices")
    return (f"{result['world_size']} process(es), {backend}: trained 1 epoch, evaluator "
            f"reduction = sum of ranks | {time.perf_counter() - start:.1f} s"), None


def main(argv: list[str] | None = None) -> int:
    projects = list(installed_projects())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        choices=["cuda", "cpu"], help="default: cuda when present")
    parser.add_argument("--steps", type=int, default=100, help="training steps per member")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="wall-clock cap; later parts print 'skipped'")
    parser.add_argument("--only", nargs="+", choices=projects, metavar="PROJECT",
                        help=f"projects to check (default: all of {', '.join(projects)})")
    parser.add_argument("--smoke", action="store_true",
                        help="small images and batches (the CPU test of this script)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device visible (use --device cpu)")
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    report = Report(args.budget_s)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"gpu_check on {name}, torch {torch.__version__}, {args.steps} steps, "
          f"budget {args.budget_s:.0f} s{', smoke sizes' if args.smoke else ''}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        ctx = Context(device, args.smoke, args.steps, Path(tmp))
        members: list[Member] = []
        for project in args.only or projects:
            built = report.part("build", project, lambda p=project: build_part(p, ctx))
            members += built or []
        for m in members:
            if m.schedule is not None:
                report.part("train", m.name, lambda m=m: train_part(m, ctx, report.deadline))
        repeats = 1 if args.smoke else 5
        for m in sorted(members, key=lambda m: m.schedule is None):
            report.part("infer", m.name, lambda m=m: infer_part(m, ctx, repeats))
        report.part("ddp", "ensemblab.engine.ddp_smoke",
                    lambda: ddp_part(ctx, report.deadline))
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
