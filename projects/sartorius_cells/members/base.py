"""Member kinds: the registry, the interface every kind implements, and the training plumbing
the kinds share (class list, trainer, progress lines).

A kind is one module of this package that subclasses :class:`MemberKind` and registers it::

    @register_member("maskrcnn")
    class MaskRCNNMember(MemberKind): ...

Configs name their kind in ``model.kind`` and manifests in each member's ``kind``; the CLI, the
manifest check and the ensemble look kinds up in :data:`MEMBERS` (the core's member registry,
:mod:`ensemblab.ensemble.members`), never by comparing names.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch

from ensemblab.backbones import lightning_precision
from ensemblab.engine import build_trainer, check_run, lightning_accelerator, open_run
from ensemblab.ensemble.members import MEMBERS
from ensemblab.errors import ConfigError, DataError
from ensemblab.projects.sartorius_cells import MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.data import CellRecord
from ensemblab.projects.sartorius_cells.structures import Instances

MEMBER_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "members"


class ImageMemo:
    """The last ``size`` results of a per-image computation, keyed by the image's pixels.

    An ensemble asks one member about the same image several times: its boxes for the fusion,
    then its masks on the fused windows, once per set-up and flip. A member that memoises its
    network pass runs it once per image and flip; only ``size`` results are held, so memory
    does not grow with the number of images predicted.
    """

    def __init__(self, size: int = 2):
        self.size = size
        self._items: OrderedDict[tuple, object] = OrderedDict()

    @staticmethod
    def key(image: np.ndarray) -> tuple:
        image = np.ascontiguousarray(image)
        return image.shape, image.dtype.str, hashlib.blake2b(image.data, digest_size=16).digest()

    def get(self, image: np.ndarray, compute: Callable[[], object]):
        """The memoised result for ``image``, computed (and the oldest one dropped) if new."""
        key = self.key(image)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = compute()
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()


class LoadedMember:
    """A trained member (or its untrained initialisation) ready to predict.

    Roles are methods: detectors implement :meth:`detect`, mask sources :meth:`window_probs`,
    members that segment an image alone :meth:`instances`, instance models (boxes and masks
    from one network) also :meth:`raw` and :meth:`finalize`.

    Attributes:
        kind: the :class:`MemberKind`.
        net: the network in eval mode.
        cfg: the run's resolved config.
        device: where ``net`` lives.
    """

    def __init__(self, kind: MemberKind, net: torch.nn.Module, cfg: dict, device: torch.device):
        self.kind, self.net, self.cfg, self.device = kind, net, cfg, device

    @property
    def classes(self) -> list[str]:
        """Cell-type names in label order (label ``k`` is ``classes[k - 1]``)."""
        return list(self.cfg["model"]["classes"])

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes of uint8 ``[H, W]``: float32 ``[N, 4]`` (x0, y0, x1, y1), scores float32
        ``[N]``, labels int64 ``[N]`` (1-based), in image pixels."""
        raise ConfigError(f"a {self.kind.name} member gives no boxes")

    def window_probs(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                     windows: np.ndarray) -> list[np.ndarray]:
        """Cell-mask probabilities on int64 ``[N, 4]`` windows around float ``[N, 4]`` boxes
        of class ``labels`` ``[N]``: one float crop ``[y1 - y0, x1 - x0]`` per window."""
        raise ConfigError(f"a {self.kind.name} member gives no masks")

    def raw(self, image: np.ndarray) -> Instances:
        """Instance models: detections of uint8 ``[H, W]`` before post-processing (probability
        crops on integer boxes)."""
        raise ConfigError(f"a {self.kind.name} member gives no instances of its own")

    def finalize(self, raw: Instances, params=None) -> Instances:
        """Instance models: post-process :meth:`raw` output with ``params``
        (``ParamsByType``; default: the run's own tuned thresholds)."""
        raise ConfigError(f"a {self.kind.name} member gives no instances of its own")

    def instances(self, image: np.ndarray) -> Instances:
        """Post-processed, non-overlapping instances of uint8 ``[H, W]`` by this member alone."""
        raise ConfigError(f"a {self.kind.name} member cannot segment an image alone; use it "
                          "in an ensemble (ensemble / submit --manifest)")

    def forget(self) -> None:
        """Drop every memoised network pass (:class:`ImageMemo` attributes)."""
        for value in vars(self).values():
            if isinstance(value, ImageMemo):
                value.clear()

    def use_precision(self, precision: str) -> None:
        """Predict in ``precision`` from now on: ``fp32`` (the exact path) or ``bf16`` (kinds
        with a bf16 fast path, the Mask R-CNN members)."""
        if precision != "fp32":
            raise ConfigError(f"a {self.kind.name} member predicts in fp32 only (--precision "
                              f"{precision}: Mask R-CNN members)")


class MemberKind(ABC):
    """How one kind of member is trained, evaluated and loaded.

    Attributes:
        name: the registry key (``model.kind`` of its configs, ``kind`` in manifests).
        detector: gives boxes to the box fusion.
        mask_source: gives mask probabilities on the fused windows.
        standalone: segments an image alone (``predict``, ``submit --run``).
        sample_unit: what one training sample is (``images``, ``crops``), for throughput.
        channels_last: a convolutional network that trains in channels-last memory layout on
            GPU (``tools/gpu_check.py`` times it so).
        smoke_overrides: config overrides that shrink a run of this kind to CPU-test sizes
            (small images and batches; ``tools/gpu_check.py --smoke``).
        root_config: the root config of the kind's configs in ``configs/members/`` (every
            default of the kind; fills the keys an older run's saved config lacks).
        choices: ``{dotted key: allowed values}`` of the kind's choice-valued config keys,
            checked when a config of the kind is loaded (``ensemblab.config.check_choices``).
    """

    name = ""
    detector = False
    mask_source = False
    standalone = False
    sample_unit = "images"
    channels_last = True
    smoke_overrides: tuple[str, ...] = ()
    root_config = ""
    choices: dict[str, tuple] = {}

    @property
    def instance_model(self) -> bool:
        """Boxes and masks from one network (the paper's set-ups 1 and 2 use these)."""
        return self.detector and self.mask_source

    @abstractmethod
    def train(self, cfg: dict, records: list[CellRecord], run_dir: Path, device: str = "auto",
              resume: bool = False, progress_bar: bool = True) -> None:
        """Fit on the training split of ``records`` (``cfg["data"]["split"]``) into
        ``run_dir`` (prepared, config saved, ``model.classes`` resolved)."""

    @abstractmethod
    def load(self, run_dir: Path, cfg: dict, device: str = "auto",
             untrained: bool = False) -> LoadedMember:
        """The run's best checkpoint; ``untrained``: the initialisation it started from."""

    @abstractmethod
    def evaluate(self, member: LoadedMember, records: list[CellRecord]) -> dict:
        """Validation metrics (``evaluate`` writes them to ``RUN/metrics.json``)."""

    def summary(self, metrics: dict) -> str:
        """One line of the main metrics."""
        return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))


def register_member(name: str):
    """Class decorator: set ``name`` on a :class:`MemberKind` subclass and register it."""

    def add(cls: type[MemberKind]) -> type[MemberKind]:
        cls.name = name
        return MEMBERS.register(name, cls)

    return add


def member_kind(name: str) -> MemberKind:
    """The kind registered as ``name`` (ConfigError naming the known kinds otherwise)."""
    return MEMBERS.get(name)()


def load_member(run_dir: str | Path, device: str = "auto", kind: str | None = None,
                untrained: bool = False, verb: str | None = None) -> LoadedMember:
    """Load a member run folder of any kind; with ``kind`` the run must be of that kind.

    Args:
        run_dir: a sartorius_cells member run (:func:`ensemblab.run_record.check_run`).
        device: where the model runs.
        kind: the ``model.kind`` the run must have (a manifest's member kind).
        untrained: load the initialisation the run started from.
        verb: the verb loading it, named in the message about a run of another project.

    Raises:
        DataError: the run is of another kind than ``kind``.
        ConfigError: not a run folder, a run of another project or kind, or its
            ``model.kind`` is not registered.
    """
    check_run(run_dir, PROJECT, (MEMBER,), verb)
    run_dir, cfg = open_run(run_dir)
    found = cfg["model"]["kind"] if isinstance(cfg.get("model"), dict) else None
    if kind is not None and found != kind:
        raise DataError(run_dir, f"is a {found} run, but the manifest names it {kind}")
    member = member_kind(str(found))
    _, cfg = open_run(run_dir, base=MEMBER_CONFIGS / member.root_config)  # older runs filled
    return member.load(run_dir, cfg, device, untrained)


def resolve_classes(cfg: dict, records: list[CellRecord]) -> dict:
    """Fill ``cfg["model"]["classes"]`` from the data when the config leaves it empty, so every
    member of an ensemble numbers the cell types alike."""
    if not cfg["model"].get("classes"):
        cfg["model"]["classes"] = sorted({r.cell_type for r in records})
    return cfg


class ProgressLine(L.Callback):
    """Prints one line (epoch, step, loss, elapsed time) at most every ``every_s`` seconds:
    long CPU stages without a progress bar still show they are alive."""

    def __init__(self, label: str, every_s: float = 30.0):
        self.label, self.every_s = label, every_s
        self.start = self.last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.perf_counter()
        if now - self.last < self.every_s:
            return
        self.last = now
        loss = trainer.callback_metrics.get("train/loss")
        shown = f", loss {float(loss):.3f}" if loss is not None else ""
        print(f"  {self.label}: epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, "
              f"step {trainer.global_step}{shown}, {now - self.start:.0f} s", flush=True)


def member_trainer(run_dir: Path, cfg: dict, device: str, monitor: str | None,
                   progress_bar: bool = True, **trainer_kwargs) -> L.Trainer:
    """The engine's trainer for a member: ``train.epochs``, validation every
    ``train.val_every`` epochs, bf16 autocast when ``train.bf16`` (and the device has it), a
    progress bar or, without one, a :class:`ProgressLine`."""
    tcfg = cfg["train"]
    accelerator, _ = lightning_accelerator(device)
    return build_trainer(run_dir, int(tcfg["epochs"]), device=device,
                         precision=lightning_precision(bool(tcfg.get("bf16")), accelerator),
                         monitor=monitor, mode="max", progress_bar=progress_bar,
                         callbacks=[] if progress_bar else [ProgressLine(Path(run_dir).name)],
                         check_val_every_n_epoch=int(tcfg["val_every"]),
                         num_sanity_val_steps=0, **trainer_kwargs)
