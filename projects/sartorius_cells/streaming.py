"""``predict`` and ``submit`` one image at a time: each image's result (CSV rows, COCO records,
RLEs) goes to its part file as soon as it is done (:class:`ensemblab.streaming.Parts`, in
``.<final name>.parts/`` beside the final file), and the final file is merged from the parts
in input order at the end, so memory stays flat in the number of images and ``--resume``
skips the images whose part exists. On several devices or nodes each rank predicts a shard
of the images into the same parts (:func:`ensemblab.engine.predict_ddp.predict_items`) and
rank 0 merges them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ensemblab.engine.predict_ddp import predict_items, processes
from ensemblab.ensemble.submission import check_submission, write_submission_stream
from ensemblab.errors import DataError
from ensemblab.streaming import DEFAULT_WORKERS, Parts, stream_predict


def check_unique_ids(images: list[tuple[str, Path]]) -> None:
    """Two images with one id (``a.png`` and ``a.tif``) would share a part and a submission id.

    Raises:
        DataError: naming both files.
    """
    seen: dict[str, Path] = {}
    for image_id, path in images:
        if image_id in seen:
            raise DataError(path, f"has the image id {image_id!r} of {seen[image_id]}; "
                                  "rename one of them")
        seen[image_id] = path


def predict_images(images: list[tuple[str, Path]], read: Callable[[Path], Any],
                   predict_image: Callable[[int, Path, Any], Any], parts: Parts,
                   resume: bool = False, device: str = "auto", devices: int = 1,
                   num_nodes: int = 1, strategy: str = "auto", workers: int = DEFAULT_WORKERS,
                   shard_dir: Path | None = None) -> bool:
    """Run ``predict_image`` on every image not done yet; it writes the image's part last.

    Args:
        images: ``(image id, path)`` in output order (:func:`.data.list_images`).
        read: path -> the image as the member takes it (run in the loader).
        predict_image: ``(index in images, path, image)`` -> a small JSON-serialisable value
            (e.g. the number of instances); it writes ``parts.path(image id)`` last.
        parts: the parts of the final file.
        resume: skip the images whose part exists.
        device, devices, num_nodes, strategy: as ``predict`` takes them; more than one
            process shards the images (:func:`~ensemblab.engine.predict_ddp.predict_items`).
        workers: image-reading loader workers asked for (capped by the thread budget).
        shard_dir: the shards' folder of the multi-process path (its default otherwise).

    Returns:
        True where this process merges the parts: always with one process, on global rank 0
        with several.
    """
    check_unique_ids(images)
    index = {path: k for k, (_, path) in enumerate(images)}
    key = {path: image_id for image_id, path in images}
    if processes(devices, num_nodes) <= 1:
        stream_predict([path for _, path in images], read, lambda p: parts.path(key[p]),
                       lambda p, image: predict_image(index[p], p, image), resume=resume,
                       workers=workers)
        return True
    todo = [path for image_id, path in images
            if not (resume and parts.path(image_id).is_file())]
    done = predict_items(todo, read, lambda _, p, image: predict_image(index[p], p, image),
                         parts.final.parent, device, devices, num_nodes, strategy, workers,
                         shard_dir=shard_dir)
    if done is None:
        return False  # rank 0 merges the parts
    if resume:
        print(f"resume: {len(images) - len(todo)} of {len(images)} images already predicted, "
              "skipped", flush=True)
    return True


def merge_submission(parts: Parts, image_ids: list[str],
                     image_sizes: dict[str, tuple[int, int]]) -> int:
    """Write the validated submission ``parts.final`` from the images' RLE parts (in
    ``image_ids`` order, one part read at a time) and remove the parts.

    Returns:
        The number of instances written.

    Raises:
        EnsemblabError: the written file breaks a rule (:func:`check_submission`).
    """
    counted = [0]

    def per_image():
        for image_id, rles in zip(image_ids, parts.results(image_ids)):
            counted[0] += len(rles)
            yield image_id, rles

    write_submission_stream(parts.final, per_image())
    check_submission(parts.final, image_sizes)
    parts.remove()
    return counted[0]
