"""Benchmark of the shared core, measured in one run: ``python tools/bench_core.py``.

1. Kaggle RLE encode+decode of 800 instance masks of 520x704 vs pycocotools (ratio; target
   <= 1.5), from ``tools/bench_rle.py``.
2. The Kaggle Sartorius score over 240 images x 300 instances (target < 2 s), with instances
   given as id maps (the submission form), plus the per-image cost of mask-stack input.
3. ``weighted_vote`` of 12 label maps of 512x512 with 9 classes (target < 20 ms) vs the
   straightforward per-pixel reference (ratio).

Wall-clock times are the best of several repeats; CPU times (``time.process_time``) are printed
beside them because on a shared machine the wall clock also counts other people's work.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is not a package

from bench_rle import bench_rle  # noqa: E402

from ensemblab.metrics.instance import kaggle_score  # noqa: E402
from ensemblab.voting import rank_weights, reference_weighted_vote, weighted_vote  # noqa: E402


def _timed(fn, repeats: int) -> tuple[float, float, object]:
    """Best wall and CPU seconds of ``repeats`` calls, and the last result."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, out


def cell_id_map(rng: np.random.Generator, height: int = 520, width: int = 704,
                rows: int = 15, cols: int = 20) -> np.ndarray:
    """``int32[H, W]``: ``rows * cols`` box-like cells of random sizes with 1-px gaps."""
    def cuts(length: int, n: int) -> np.ndarray:  # n - 1 cuts, jittered around even spacing
        step = length / n
        return (np.arange(1, n) * step + rng.uniform(-step / 4, step / 4, n - 1)).astype(int)

    ys, xs = cuts(height, rows), cuts(width, cols)
    row = np.searchsorted(ys, np.arange(height), side="right")
    col = np.searchsorted(xs, np.arange(width), side="right")
    ids = (row[:, None] * cols + col[None, :] + 1).astype(np.int32)
    ids[np.isin(np.arange(height), ys), :] = 0
    ids[:, np.isin(np.arange(width), xs)] = 0
    return ids


def predicted_id_map(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible prediction: shifted by a few pixels, ~10% of cells missed, ids permuted."""
    pred = np.roll(gt, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(0, 1))
    n = int(gt.max())
    relabel = np.concatenate([[0], rng.permutation(n) + 1]).astype(np.int32)
    relabel[1:][rng.random(n) < 0.1] = 0
    return relabel[pred]


def bench_kaggle(n_images: int = 240, n_distinct: int = 24, seed: int = 0) -> dict:
    """Kaggle score over ``n_images`` (``n_distinct`` generated pairs, cycled) of 300 cells."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_distinct):
        gt = cell_id_map(rng)
        pairs.append((predicted_id_map(gt, rng), gt))
    n_cells = int(np.mean([len(np.unique(g)) - 1 for _, g in pairs]))

    def run() -> float:
        return float(np.mean([kaggle_score(*pairs[i % n_distinct]) for i in range(n_images)]))

    wall, cpu, score = _timed(run, 3)
    pred, gt = pairs[0]
    pred_masks = pred[None] == np.arange(1, pred.max() + 1, dtype=np.int32)[:, None, None]
    gt_masks = gt[None] == np.arange(1, gt.max() + 1, dtype=np.int32)[:, None, None]
    stack_wall, stack_cpu, stack_score = _timed(lambda: kaggle_score(pred_masks, gt_masks), 2)
    assert abs(stack_score - kaggle_score(pred, gt)) < 1e-12
    print(f"Kaggle score, {n_images} images x {n_cells} instances (id maps, {n_distinct} distinct "
          f"pairs cycled): {wall:.2f} s wall, {cpu:.2f} s CPU (target < 2 s); mean score "
          f"{score:.3f}. Mask-stack input bool[{len(gt_masks)}, 520, 704]: "
          f"{stack_wall * 1e3:.0f} ms/image wall, {stack_cpu * 1e3:.0f} ms CPU")
    return {"kaggle_s": wall, "kaggle_cpu_s": cpu, "kaggle_stack_s_per_image": stack_wall}


def label_maps(rng: np.random.Generator, m: int = 12, size: int = 512, classes: int = 9
               ) -> np.ndarray:
    """``uint8[M, size, size]``: a blocky ground truth and ``M`` noisy copies of it."""
    coarse = rng.integers(0, classes, (size // 32, size // 32))
    truth = np.kron(coarse, np.ones((32, 32), dtype=np.int64))
    noise = rng.integers(0, classes, (m, size // 8, size // 8))
    flip = rng.random((m, size // 8, size // 8)) < 0.3
    block = np.ones((8, 8), dtype=np.int64)
    wrong = np.stack([np.kron(noise[k], block) for k in range(m)])
    flipped = np.stack([np.kron(flip[k], block) for k in range(m)]).astype(bool)
    return np.where(flipped, wrong, truth[None]).astype(np.uint8)


def bench_vote(seed: int = 0) -> dict:
    """``weighted_vote`` of 12 maps of 512x512 vs the per-pixel reference."""
    maps = label_maps(np.random.default_rng(seed))
    w = rank_weights(len(maps))
    wall, cpu, voted = _timed(lambda: weighted_vote(maps, w, num_classes=9), 7)
    ref_wall, _, ref = _timed(lambda: reference_weighted_vote(maps, w), 1)
    assert (voted == ref).all(), "weighted_vote disagrees with the per-pixel reference"
    wide = maps.astype(np.int64)  # numpy's default integer, as most callers hold labels
    wide_wall, _, wide_voted = _timed(lambda: weighted_vote(wide, w, num_classes=9), 7)
    assert (wide_voted == voted).all(), "int64 and uint8 maps vote differently"
    print(f"weighted_vote of {len(maps)} maps 512x512, 9 classes: {wall * 1e3:.1f} ms wall, "
          f"{cpu * 1e3:.1f} ms CPU (target < 20 ms); int64 maps {wide_wall * 1e3:.1f} ms "
          f"(ratio {wide_wall / wall:.2f}); per-pixel reference {ref_wall:.2f} s, "
          f"ratio {ref_wall / wall:.0f}x, identical output")
    return {"vote_ms": wall * 1e3, "vote_cpu_ms": cpu * 1e3, "vote_int64_ms": wide_wall * 1e3,
            "vote_ratio": ref_wall / wall}


def main() -> dict:
    results = {}
    results.update({f"rle_{k}": v for k, v in bench_rle().items()})
    results.update(bench_kaggle())
    results.update(bench_vote())
    return results


if __name__ == "__main__":
    main()
