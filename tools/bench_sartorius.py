"""Time and memory of the three-model ensemble on one dense synthetic image (~800 cells).

    python tools/bench_sartorius.py --manifest MANIFEST [--cells 800] [--device cpu]
        [--oracle-boxes] [--out bench_sartorius.png]

Stages are timed separately: each detector (all its flips), box fusion, each mask model on the
fused windows, the consensus vote + re-ranking + overlap removal, and the Kaggle RLEs. Each mask
model is timed twice: as predicted (a Mask R-CNN reuses the backbone pass its detection made on
the image and flip) and with its memo emptied first (what the mask stage costs without it). The peak
resident memory of the process (everything: models, image, crops) is reported against the 4 GB
budget. ``--oracle-boxes`` feeds the ground-truth boxes to the mask stage instead of the
detections, so the mask models and the fusion see all ~800 cells even with weak detectors.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ensemblab.ensemble.fusion import instance_windows  # noqa: E402
from ensemblab.io import save_figure  # noqa: E402
from ensemblab.memory import peak_rss_bytes  # noqa: E402
from ensemblab.metrics.instance import kaggle_score  # noqa: E402
from ensemblab.projects.sartorius_cells.ensemble.consensus import (  # noqa: E402
    EnsembleMembers,
    RawConsensus,
    detect,
    finalize,
    fuse_sets,
    read_manifest,
    window_probs,
)
from ensemblab.projects.sartorius_cells.ensemble.fitting import params_for  # noqa: E402
from ensemblab.projects.sartorius_cells.structures import (  # noqa: E402
    instances_to_idmap,
    instances_to_rles,
)
from ensemblab.synthetic.cells import make_cells_image  # noqa: E402


def oracle_boxes(idmap: np.ndarray) -> np.ndarray:
    """Tight boxes of every instance of an id map, float ``[N, 4]``."""
    from scipy import ndimage

    return np.array([(s[1].start, s[0].start, s[1].stop, s[0].stop)
                     for s in ndimage.find_objects(idmap) if s is not None], np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True, help="ensemble manifest with trained runs")
    ap.add_argument("--cells", type=int, default=800, help="cells to draw (shsy5y style)")
    ap.add_argument("--height", type=int, default=520)
    ap.add_argument("--width", type=int, default=704)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--oracle-boxes", action="store_true",
                    help="feed ground-truth boxes to the mask stage")
    ap.add_argument("--out", default="bench_sartorius.png", help="bar chart of stage times")
    args = ap.parse_args()

    image, ids = make_cells_image(0, "shsy5y", args.height, args.width, n_cells=args.cells)
    n_gt = int(ids.max())
    times: dict[str, float] = {}
    t = time.perf_counter()
    manifest = read_manifest(args.manifest)
    ens = EnsembleMembers(manifest, args.device)
    times["load members"] = time.perf_counter() - t
    sets = []
    for m in ens.members:
        t = time.perf_counter()
        own = detect([m], image)
        if own:
            times[f"detect {m.spec.name} x{len(m.spec.flips)}"] = time.perf_counter() - t
        sets += own
    t = time.perf_counter()
    h, w = image.shape
    boxes, scores, labels, windows = fuse_sets(ens.members, sets, manifest, h, w)
    n_detected = len(boxes)
    if args.oracle_boxes:
        boxes = oracle_boxes(ids)
        scores, labels = np.ones(len(boxes), np.float32), np.ones(len(boxes), np.int64)
        windows = instance_windows(boxes, h, w, float(manifest.fusion["window_pad"]))
    times["box fusion (WBF)"] = time.perf_counter() - t
    sources = {}
    for m in ens.members:
        if m.votes:
            t = time.perf_counter()
            sources[m.spec.name] = window_probs(m, image, boxes, labels, windows)
            times[f"masks {m.spec.name}"] = time.perf_counter() - t
    for m in ens.members:  # the mask stage again without the detectors' network passes
        if m.votes:
            m.member.forget()
            t = time.perf_counter()
            window_probs(m, image, boxes, labels, windows)
            times[f"masks {m.spec.name}, nothing memoised"] = time.perf_counter() - t
    raw = RawConsensus(boxes, scores, labels, windows, sources, h, w)
    t = time.perf_counter()
    weights = {m.spec.name: m.spec.mask_weight for m in ens.members}
    inst = finalize(raw, weights, params_for(manifest.thresholds, None))
    times["vote + rerank + overlaps"] = time.perf_counter() - t
    t = time.perf_counter()
    rles = instances_to_rles(inst)
    times["Kaggle RLEs"] = time.perf_counter() - t
    peak = peak_rss_bytes() / 2**30
    total = sum(v for k, v in times.items() if k != "load members" and "memoised" not in k)
    print(f"image {h}x{w}, {n_gt} true cells, {n_detected} fused detections, "
          f"{len(boxes)} boxes to the mask stage{' (oracle)' if args.oracle_boxes else ''}, "
          f"{len(rles)} instances out")
    for name, sec in times.items():
        share = ("" if name == "load members" or "memoised" in name
                 else f"  {sec / total:6.1%} of predict")
        print(f"  {name:34s} {sec:8.2f} s{share}")
    print(f"  predict total (excl. loading)     {total:8.2f} s")
    print(f"  fusion / members time ratio       "
          f"{(times['box fusion (WBF)'] + times['vote + rerank + overlaps']) / total:.3f}")
    print(f"peak RSS {peak:.2f} GB (budget 4 GB: {'OK' if peak < 4 else 'OVER'})")
    print(f"Kaggle score on this image: {kaggle_score(instances_to_idmap(inst), ids):.4f}")
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(times) + 1))
    ax.barh(list(times), list(times.values()))
    ax.set_xlabel("seconds")
    ax.set_title(f"{n_gt}-cell image, peak RSS {peak:.2f} GB")
    ax.invert_yaxis()
    save_figure(fig, args.out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
