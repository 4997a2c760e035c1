"""Benchmark: Kaggle RLE encode+decode vs pycocotools encode+decode of the same masks.

``python tools/bench_rle.py`` prints one line per route and the ratio (target: <= 1.5). The
masks are 800 elliptic instances in a 520x704 image (the density of the Sartorius SH-SY5Y
images). ``bench_rle()`` is what ``tools/bench_core.py`` calls.
"""

from __future__ import annotations

import time

import numpy as np
from pycocotools import mask as coco_mask

from ensemblab.data.rle import instance_map_to_rles, masks_to_instance_map, rle_decode, rle_encode


def _ellipse_masks(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """[n, H, W] bool: random ellipses with semi-axes 4-20 px (overlaps allowed)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, height, width), dtype=bool)
    for i in range(n):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        a, b = rng.uniform(4, 20, size=2)
        y0, y1 = int(max(cy - a - 1, 0)), int(min(cy + a + 2, height))
        x0, x1 = int(max(cx - b - 1, 0)), int(min(cx + b + 2, width))
        yy, xx = np.mgrid[y0:y1, x0:x1]
        masks[i, y0:y1, x0:x1] = ((yy - cy) / a) ** 2 + ((xx - cx) / b) ** 2 <= 1
    return masks


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_rle(n: int = 800, height: int = 520, width: int = 704, repeats: int = 3,
              seed: int = 0, verbose: bool = True) -> dict:
    """Time Kaggle RLE vs pycocotools on ``n`` full-size masks (best of ``repeats``).

    Returns:
        ``{"ours_s", "pycocotools_s", "ratio", "idmap_encode_s"}``: encode+decode seconds of
        :func:`rle_encode`/:func:`rle_decode` per mask, of ``pycocotools.mask.encode/decode``
        on the [H, W, n] Fortran stack, their ratio (ours / pycocotools), and the one-pass
        :func:`instance_map_to_rles` encode of the same instances as an id map.
    """
    masks = _ellipse_masks(n, height, width, seed)
    stack = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))

    def ours() -> None:
        rles = [rle_encode(m) for m in masks]
        out = np.empty_like(masks)
        for i, r in enumerate(rles):
            out[i] = rle_decode(r, (height, width))

    def pycoco() -> None:
        coco_mask.decode(coco_mask.encode(stack))

    rles = [rle_encode(m) for m in masks]
    assert all((rle_decode(r, (height, width)) == m).all() for r, m in zip(rles, masks))
    idmap = masks_to_instance_map(masks)
    t_ours, t_coco = _best_of(ours, repeats), _best_of(pycoco, repeats)
    t_idmap = _best_of(lambda: instance_map_to_rles(idmap), repeats)
    result = {"ours_s": t_ours, "pycocotools_s": t_coco, "ratio": t_ours / t_coco,
              "idmap_encode_s": t_idmap}
    if verbose:
        print(f"RLE encode+decode of {n} masks {height}x{width}: ours {t_ours * 1e3:.1f} ms, "
              f"pycocotools {t_coco * 1e3:.1f} ms, ratio {result['ratio']:.2f} "
              f"(target <= 1.5); id-map one-pass encode {t_idmap * 1e3:.1f} ms")
    return result


if __name__ == "__main__":
    bench_rle()
