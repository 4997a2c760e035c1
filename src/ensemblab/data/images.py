"""Image, label-PNG and TIFF-stack readers that validate what they read.

Every failure (missing file, corrupt bytes, wrong channel count, mask shape differing from its
image, label values outside the allowed set) is a one-line :class:`DataError` naming the file,
never a traceback from inside PIL or numpy. Images come back as uint8 or uint16 arrays of
shape [H, W] (gray) or [H, W, 3] (RGB).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from ensemblab.errors import DataError
from ensemblab.io import atomic_path

TIFF_EXTS = (".tif", ".tiff")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as PIL's "L" conversion


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


def _load_raw(path: Path) -> np.ndarray:
    """Read the pixel array of one image file (any dtype/channels) or raise DataError."""
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.suffix.lower() in TIFF_EXTS:
        try:
            with tifffile.TiffFile(path) as tif:
                if not len(tif.pages):
                    raise DataError(path, "cannot read TIFF (no image pages; corrupt file?)")
                axes = tif.series[0].axes
                arr = tif.asarray()
        except DataError:
            raise
        except Exception as exc:  # tifffile raises many types on corrupt input
            raise DataError(path, f"cannot read TIFF ({_one_line(exc)})") from None
        if arr.ndim == 3 and axes.startswith("S") and arr.shape[0] in (3, 4):
            arr = np.moveaxis(arr, 0, -1)  # planar RGB -> channels last
        elif arr.ndim == 3 and not axes.endswith("S"):
            raise DataError(path, f"is a stack of {arr.shape[0]} pages (use read_tiff_stack)")
        return arr
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "P", "PA", "CMYK", "YCbCr", "1"):
                img = img.convert("L" if img.mode in ("LA", "1") else "RGB")
            return np.array(img)
    except Exception as exc:  # PIL: UnidentifiedImageError, OSError (truncated), SyntaxError
        raise DataError(path, f"cannot read image ({_one_line(exc)})") from None


def _to_uint(arr: np.ndarray, path: Path) -> np.ndarray:
    """Cast bool/integer pixels to uint8/uint16; anything else is a DataError."""
    if arr.dtype in (np.uint8, np.uint16):
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= 65535:
            return arr.astype(np.uint8 if hi <= 255 else np.uint16)
        raise DataError(path, f"pixel values {lo}..{hi} do not fit 16 bits")
    raise DataError(path, f"unsupported pixel type {arr.dtype} (expected 8/16-bit integers)")


def read_image(path: str | Path, mode: str = "any") -> np.ndarray:
    """Read an 8/16-bit gray or RGB image (PNG/JPEG/BMP through PIL, TIFF through tifffile).

    Args:
        path: image file.
        mode: ``"any"`` (as stored, alpha dropped), ``"gray"`` (RGB -> luma, same dtype) or
            ``"rgb"`` (gray replicated to 3 channels).

    Returns:
        uint8 or uint16 array, [H, W] or [H, W, 3].

    Raises:
        DataError: missing, corrupt or unsupported file (naming it).
    """
    if mode not in ("any", "gray", "rgb"):
        raise ValueError(f"mode must be 'any', 'gray' or 'rgb', got {mode!r}")
    path = Path(path)
    arr = _to_uint(_load_raw(path), path)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise DataError(path, f"unsupported image shape {arr.shape} (expected HxW or HxWx3)")
    if mode == "gray" and arr.ndim == 3:
        arr = np.rint(arr @ _GRAY_WEIGHTS).astype(arr.dtype)
    elif mode == "rgb" and arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return arr


def read_label_png(path: str | Path, allowed_values: Iterable[int] | None = None,
                   shape: Sequence[int] | None = None) -> np.ndarray:
    """Read a class-index mask (single channel; palette PNGs give their indices, as VOC).

    Args:
        path: mask file (PNG, or TIFF).
        allowed_values: class indices that may occur; None = any.
        shape: expected (H, W), usually that of the matching image; None = no check.

    Returns:
        [H, W] uint8 or uint16 class indices.

    Raises:
        DataError: unreadable file, more than one channel, shape differing from ``shape``, or
            values outside ``allowed_values`` (naming the first offending values and their
            pixel counts).
    """
    path = Path(path)
    if path.suffix.lower() in TIFF_EXTS:
        arr = _load_raw(path)
    else:
        if not path.is_file():
            raise DataError(path, "file not found")
        try:
            with Image.open(path) as img:
                img.load()  # keep "P" as indices: no convert
                arr = np.array(img.convert("L") if img.mode in ("1", "LA") else img)
        except Exception as exc:
            raise DataError(path, f"cannot read label image ({_one_line(exc)})") from None
    arr = _to_uint(arr, path)
    if arr.ndim != 2:
        raise DataError(path, f"label mask has shape {arr.shape}; expected a single-channel "
                              "class-index image")
    if shape is not None and tuple(arr.shape) != tuple(int(s) for s in shape[:2]):
        raise DataError(path, f"mask shape {arr.shape} != image shape {tuple(shape[:2])}")
    if allowed_values is not None:
        allowed = np.asarray(sorted(set(int(v) for v in allowed_values)))
        present, pixels = np.unique(arr, return_counts=True)
        out = ~np.isin(present, allowed)
        bad, pixels = present[out].tolist(), pixels[out].tolist()
        if bad:
            more = " ..." if len(bad) > 5 else ""
            shown = ", ".join(str(v) for v in bad[:5]) + more
            counts = ", ".join(f"{v}: {n} px" for v, n in zip(bad[:5], pixels)) + more
            raise DataError(path, f"label values {shown} not in the allowed set "
                                  f"{allowed.tolist()} ({counts})")
    return arr


def read_tiff_stack(path: str | Path) -> np.ndarray:
    """Read a TIFF stack, or a folder of 2-D slices (sorted by name), as [Z, H, W].

    Args:
        path: a multi-page TIFF, a single-page TIFF (Z = 1), or a folder of ``.tif``/``.png``
            slices of equal shape.

    Returns:
        [Z, H, W] uint8 or uint16.

    Raises:
        DataError: unreadable file, wrong dimensionality, or slices of different shapes.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (*TIFF_EXTS, ".png"))
        if not files:
            raise DataError(path, "no .tif/.png slices in folder")
        slices = [read_image(f, mode="gray") for f in files]
        for f, s in zip(files, slices):
            if s.shape != slices[0].shape:
                raise DataError(f, f"slice shape {s.shape} != first slice {slices[0].shape}")
        return np.stack(slices)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with tifffile.TiffFile(path) as tif:
            if not len(tif.pages):
                raise DataError(path, "cannot read TIFF (no image pages; corrupt file?)")
            arr = tif.asarray()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(path, f"cannot read TIFF ({_one_line(exc)})") from None
    arr = _to_uint(np.asarray(arr), path)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DataError(path, f"stack has shape {arr.shape}; expected [Z, H, W]")
    return arr


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write an [H, W] or [H, W, 3|4] bool/uint8/uint16 array as PNG, atomically.

    Integer arrays of another dtype are accepted when their values fit 16 bits (e.g. int32
    instance maps), and stored as 8-bit when they fit 8 bits.
    """
    path = Path(path)
    arr = _to_uint(np.asarray(array), path)
    if arr.dtype == np.uint16 and arr.ndim != 2:
        raise DataError(path, "16-bit PNG must be single-channel")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise DataError(path, f"cannot write shape {arr.shape} as PNG")
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG")


def list_pairs(image_dir: str | Path, mask_dir: str | Path,
               image_exts: Sequence[str] = IMAGE_EXTS, mask_ext: str = ".png"
               ) -> list[tuple[Path, Path]]:
    """Match images to masks by file stem.

    Args:
        image_dir: folder of images.
        mask_dir: folder of masks named like their images (``a.jpg`` <-> ``a.png``).
        image_exts: image suffixes to consider (case-insensitive).
        mask_ext: mask suffix.

    Returns:
        [(image_path, mask_path)] sorted by stem.

    Raises:
        DataError: a missing folder, no images, two images sharing a stem, or an image without
            a mask / a mask without an image (naming up to five of them).
    """
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    for d in (image_dir, mask_dir):
        if not d.is_dir():
            raise DataError(d, "folder not found")
    exts = {e.lower() for e in image_exts}
    images: dict[str, Path] = {}
    for p in sorted(image_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in exts:
            if p.stem in images:
                raise DataError(image_dir, f"two images share the name {p.stem!r} "
                                           f"({images[p.stem].name}, {p.name})")
            images[p.stem] = p
    masks = {p.stem: p for p in sorted(mask_dir.iterdir())
             if p.is_file() and p.suffix.lower() == mask_ext.lower()}
    if not images:
        raise DataError(image_dir, f"no images with suffix {sorted(exts)}")
    for missing, folder, what in ((sorted(set(images) - set(masks)), mask_dir, "mask"),
                                  (sorted(set(masks) - set(images)), image_dir, "image")):
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DataError(folder, f"no {what} for {len(missing)} name(s): {shown}")
    return [(images[s], masks[s]) for s in sorted(images)]
