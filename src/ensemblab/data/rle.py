"""Run-length codecs for instance masks: Kaggle RLE and pycocotools (COCO) RLE.

Two conventions meet here and must never be mixed (DESIGN.md, "Libraries"):

* **Kaggle RLE** (Sartorius ``train.csv``): a string of ``"start length"`` pairs, pixels numbered
  row-major (left to right, then top to bottom) and starts **1-based**. A 3x4 mask whose pixels
  (0, 1), (0, 2) and (1, 3) are set encodes to ``"2 2 8 1"``.
* **COCO RLE** (pycocotools): a dict ``{"size": [H, W], "counts": ...}`` whose runs alternate
  background/foreground over the pixels in **column-major** order, starting with background.

Everything is vectorised: encoding finds the set pixels with one ``np.flatnonzero`` scan and
splits them into runs where consecutive indices jump; decoding writes the run pixels with one
fancy-index assignment (``np.repeat`` + ``arange``), so the cost is one pass over the image plus
work proportional to the mask area, never a Python loop over pixels.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask

from ensemblab.errors import DataError


def _runs_from_indices(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split sorted flat indices of set pixels into runs.

    Args:
        idx: int[K] strictly increasing 0-based flat indices.

    Returns:
        (starts int[R] 0-based, lengths int[R]).
    """
    if idx.size == 0:
        return idx, idx
    breaks = np.flatnonzero(np.diff(idx) != 1)
    first = np.concatenate(([0], breaks + 1))
    last = np.concatenate((breaks, [idx.size - 1]))
    return idx[first], idx[last] - idx[first] + 1


def _format_runs(starts: np.ndarray, lengths: np.ndarray) -> str:
    """Kaggle text of 0-based ``starts`` and ``lengths`` (1-based starts in the output)."""
    pairs = np.empty(2 * starts.size, dtype=np.int64)
    pairs[0::2] = starts + 1
    pairs[1::2] = lengths
    return " ".join(map(str, pairs.tolist()))


def rle_encode(mask: np.ndarray) -> str:
    """Encode a binary mask as a Kaggle RLE string.

    Args:
        mask: [H, W] bool (or 0/1 integer) mask.

    Returns:
        ``"start length ..."`` with 1-based row-major starts; ``""`` for an empty mask.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode expects a 2-D mask, got shape {mask.shape}")
    flat = np.ascontiguousarray(mask).reshape(-1)
    if flat.dtype != np.bool_:
        flat = flat != 0
    return _format_runs(*_runs_from_indices(np.flatnonzero(flat)))


def parse_rle(rle: str, shape: tuple[int, int], source: str | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Parse and validate a Kaggle RLE string without building the mask.

    Args:
        rle: ``"start length ..."`` (1-based row-major starts); empty or blank = empty mask.
        shape: (H, W) of the image the runs live in.
        source: names the origin in error messages, e.g. ``"train.csv line 12"``.

    Returns:
        (starts int64[R] 0-based, lengths int64[R]).

    Raises:
        DataError: odd number of tokens, a non-integer token, a start < 1 or length < 1, a run
            past the image end, or runs that are unsorted or overlap.
    """
    if rle is None or (isinstance(rle, float) and np.isnan(rle)):
        rle = ""
    tokens = str(rle).split()
    if len(tokens) % 2:
        raise DataError(source, f"RLE has an odd number of tokens ({len(tokens)})")
    try:
        values = np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        bad = next(t for t in tokens if not _is_int(t))
        raise DataError(source, f"RLE token {bad!r} is not an integer") from None
    starts, lengths = values[0::2] - 1, values[1::2]
    n_pixels = int(shape[0]) * int(shape[1])
    if starts.size == 0:
        return starts, lengths
    if starts.min() < 0:
        raise DataError(source, f"RLE start {int(starts.min()) + 1} < 1 (starts are 1-based)")
    if lengths.min() < 1:
        raise DataError(source, f"RLE run length {int(lengths.min())} < 1")
    past = lengths > n_pixels - starts  # ends > n_pixels, without int64 overflow in the sum
    if past.any():
        i = int(np.argmax(past))
        raise DataError(source, f"RLE run {int(starts[i]) + 1}+{int(lengths[i])} runs past the "
                                f"image end ({n_pixels} pixels for shape {tuple(shape)})")
    ends = starts + lengths
    bad = np.flatnonzero(starts[1:] < ends[:-1])
    if bad.size:
        i = int(bad[0])
        kind = "unsorted" if starts[i + 1] < starts[i] else "overlapping"
        raise DataError(source, f"RLE runs are {kind}: run {i + 2} starts at "
                                f"{int(starts[i + 1]) + 1} before the previous run ends "
                                f"(pixel {int(ends[i])})")
    return starts, lengths


def _is_int(token: str) -> bool:
    """Whether numpy parses ``token`` as an int64 (the same parser as :func:`parse_rle`)."""
    try:
        np.array([token], dtype=np.int64)
    except (ValueError, OverflowError):
        return False
    return True


def rle_decode(rle: str, shape: tuple[int, int], source: str | None = None) -> np.ndarray:
    """Decode a Kaggle RLE string into a binary mask.

    Args:
        rle: ``"start length ..."`` (1-based row-major starts); empty = empty mask.
        shape: (H, W).
        source: names the file (and row) in error messages.

    Returns:
        [H, W] bool mask.

    Raises:
        DataError: see :func:`parse_rle`.
    """
    flat = np.zeros(int(shape[0]) * int(shape[1]), dtype=bool)
    flat[rle_to_indices(rle, shape, source)] = True
    return flat.reshape(int(shape[0]), int(shape[1]))


def rle_to_indices(rle: str, shape: tuple[int, int], source: str | None = None) -> np.ndarray:
    """Row-major flat indices (0-based) of the pixels of a Kaggle RLE, without a mask.

    Args:
        rle: ``"start length ..."``.
        shape: (H, W).
        source: names the origin in error messages.

    Returns:
        int64[area], ascending; ``divmod(idx, W)`` gives (row, col).
    """
    starts, lengths = parse_rle(rle, shape, source)
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return offsets + np.arange(int(lengths.sum()), dtype=np.int64)


def mask_to_coco_rle(mask: np.ndarray) -> dict:
    """Encode a binary mask as a compressed pycocotools RLE.

    Args:
        mask: [H, W] bool mask.

    Returns:
        ``{"size": [H, W], "counts": str}`` (column-major; ``counts`` is an ASCII string so the
        dict is JSON-ready and accepted by every ``pycocotools.mask`` function).
    """
    rle = coco_mask.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_rle_to_mask(coco_rle: dict) -> np.ndarray:
    """Decode a pycocotools RLE (compressed string/bytes or uncompressed list counts).

    Args:
        coco_rle: ``{"size": [H, W], "counts": str | bytes | list[int]}``.

    Returns:
        [H, W] bool mask.
    """
    h, w = (int(v) for v in coco_rle["size"])
    counts = coco_rle["counts"]
    if isinstance(counts, list):
        rle = coco_mask.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    else:
        rle = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str)
               else counts}
    return coco_mask.decode(rle).astype(bool)


def kaggle_to_coco_rle(rle: str, shape: tuple[int, int], source: str | None = None) -> dict:
    """Convert a Kaggle RLE (row-major, 1-based) to a compressed COCO RLE (column-major).

    Args:
        rle: Kaggle ``"start length ..."`` string.
        shape: (H, W).
        source: names the origin in error messages.

    Returns:
        ``{"size": [H, W], "counts": str}``.
    """
    return mask_to_coco_rle(rle_decode(rle, shape, source))


def coco_rle_to_kaggle(coco_rle: dict) -> str:
    """Convert a COCO RLE dict (compressed or uncompressed counts) to a Kaggle RLE string."""
    return rle_encode(coco_rle_to_mask(coco_rle))


def masks_to_instance_map(masks: np.ndarray) -> np.ndarray:
    """Collapse instance masks into one instance-id map.

    Args:
        masks: [N, H, W] bool masks (may overlap).

    Returns:
        [H, W] int32 map: 0 background, ``i + 1`` where mask ``i`` is set; a pixel claimed by
        several masks goes to the earliest one (``argmax`` returns the first True).
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, H, W], got shape {masks.shape}")
    if masks.shape[0] == 0:
        return np.zeros(masks.shape[1:], dtype=np.int32)
    first = np.argmax(masks, axis=0).astype(np.int32) + 1
    return np.where(masks.any(axis=0), first, 0).astype(np.int32)


def instance_map_to_masks(idmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split an instance-id map into one mask per id.

    Args:
        idmap: [H, W] integer map, 0 = background.

    Returns:
        (masks [N, H, W] bool, ids int64[N] sorted ascending).
    """
    idmap = np.asarray(idmap)
    ids = np.unique(idmap)
    ids = ids[ids != 0].astype(np.int64)
    return idmap[None] == ids[:, None, None], ids


def instance_map_to_rles(idmap: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Kaggle RLE of every instance of an id map in one pass (no per-instance image scan).

    Pixels are grouped by id with one stable sort of the flat map, so the cost is
    O(H*W log) once instead of O(N * H * W) for N separate :func:`rle_encode` calls.

    Args:
        idmap: [H, W] integer map, 0 = background.

    Returns:
        (rles list[str] of length N, ids int64[N] ascending).
    """
    flat = np.ascontiguousarray(idmap).reshape(-1)
    fg = np.flatnonzero(flat)
    order = np.argsort(flat[fg], kind="stable")
    idx = fg[order]
    lab = flat[idx].astype(np.int64)
    if idx.size == 0:
        return [], np.zeros(0, dtype=np.int64)
    new_run = np.concatenate(([True], (np.diff(idx) != 1) | (np.diff(lab) != 0)))
    run_first = np.flatnonzero(new_run)
    run_len = np.diff(np.concatenate((run_first, [idx.size])))
    run_lab = lab[run_first]
    ids, first_run = np.unique(run_lab, return_index=True)
    bounds = np.concatenate((first_run, [run_first.size]))
    starts = idx[run_first]
    rles = [_format_runs(starts[a:b], run_len[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return rles, ids
