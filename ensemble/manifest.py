"""An ensemble as data: member run folders, their weights, per-cell-type thresholds, TTA flips.

A manifest is a small YAML (or JSON) file; fitting on a validation fold rewrites its weights and
thresholds, so the file alone rebuilds the ensemble that was scored::

    name: consensus
    setup: consensus            # nms | mask_vote | consensus (the paper's set-ups 1-3)
    members:
      - {name: yolox, kind: yolox, run: runs/yolox, box_weight: 1.0, flips: [none, h]}
      - {name: mrcnn, kind: maskrcnn, run: runs/mrcnn, box_weight: 1.0, mask_weight: 1.0}
      - {name: upernet_full, kind: upernet_full, run: runs/upernet_full, mask_weight: 1.0}
      - {name: upernet_crop, kind: upernet_crop, run: runs/upernet_crop, mask_weight: 1.0}
    fusion: {iou_thr: 0.55, skip_box_thr: 0.02, conf_type: avg, window_pad: 0.1}
    thresholds:
      default: {score_thresh: 0.3, mask_thresh: 0.5, overlap_drop_frac: 0.5, min_area: 8}
      per_type: {shsy5y: {score_thresh: 0.25, ...}}

Relative ``run`` paths are resolved against the working directory (like ``--run``).

Manifests are as strict as configs: a key the format does not hold (at the top level, in a
member, under ``fusion`` or ``thresholds``) is a one-line :class:`ConfigError` naming it and the
closest valid key. A ``fusion`` key left out takes its value from :data:`FUSION`, the one place
those defaults live.

Member kinds are checked against ``kinds``: by default the member registry
(:data:`ensemblab.ensemble.members.MEMBERS`, every kind an installed project registers), or the
names a caller passes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from numbers import Real
from pathlib import Path

import yaml

from ensemblab.config import check_choice
from ensemblab.ensemble.members import MEMBERS
from ensemblab.errors import ConfigError, DataError
from ensemblab.io import atomic_write_text
from ensemblab.registry import Registry, unknown_name_message
from ensemblab.voting.boxes import CONF_TYPES

SETUPS = ("nms", "mask_vote", "consensus")
FLIPS = ("none", "h", "v")
KEYS = ("name", "setup", "members", "fusion", "thresholds")
FUSION = {
    "iou_thr": 0.55,      # WBF: boxes of one label overlapping more than this are fused
    "skip_box_thr": 0.0,  # WBF: boxes scoring below this are left out
    "conf_type": "avg",   # WBF score of a fused box: one of CONF_TYPES (ensemble-boxes)
    "window_pad": 0.1,    # fused box growth per side (fraction of its size) for mask windows
    "search": None,       # {param: [values]} threshold grid fitted per cell type (null: a
                          # project default)
}
"""The ``fusion`` keys and the value of each one a manifest leaves out."""
THRESHOLD_KEYS = ("default", "per_type")


@dataclass
class Member:
    """One model of the ensemble.

    Attributes:
        name: unique name (used in tables and overlays).
        kind: a member kind the manifest's ``kinds`` holds (by default a registered one).
        run: run folder of the trained model.
        box_weight: weight of its boxes in weighted box fusion (detectors only).
        mask_weight: weight of its mask probabilities in the consensus vote (mask sources only).
        flips: test-time flips, each ``none``, ``h`` (left-right) or ``v`` (up-down).
        config: the training config of the member (a record of how ``run`` was made).
    """

    name: str
    kind: str
    run: str
    box_weight: float = 1.0
    mask_weight: float = 1.0
    flips: list[str] = field(default_factory=lambda: ["none"])
    config: str | None = None


@dataclass
class Manifest:
    """The whole ensemble (see the module docstring for the file format).

    Attributes:
        name: label of the ensemble.
        setup: ``nms`` (one Mask R-CNN + NMS), ``mask_vote`` (several Mask R-CNN members, NMS +
            mask voting) or ``consensus`` (YOLOX + Mask R-CNN + UPerNet).
        members: the models.
        fusion: box-fusion / window parameters (the keys of :data:`FUSION`, missing ones
            filled from it; ``conf_type`` one of ``avg | max | box_and_model_avg |
            absent_model_aware_avg``, the WBF score rule).
        thresholds: ``{"default": {...}, "per_type": {cell_type: {...}}}`` post-processing
            parameters (``score_thresh, mask_thresh, overlap_drop_frac, min_area``, ...).
        root: folder that relative run paths are resolved against (not saved; default: the
            working directory).
        kinds: the member kinds accepted (not saved; default: the names registered in
            :data:`~ensemblab.ensemble.members.MEMBERS`; ``None`` accepts any kind).
    """

    name: str
    setup: str
    members: list[Member]
    fusion: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=lambda: {"default": {}, "per_type": {}})
    root: Path = Path(".")
    kinds: Registry | Iterable[str] | None = field(default=MEMBERS, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.kinds, Registry):
            self.kinds = self.kinds.names()
        if self.kinds is not None:
            self.kinds = tuple(self.kinds)
        if self.setup not in SETUPS:
            raise ConfigError(f"manifest setup must be one of {SETUPS}, got {self.setup!r}")
        _check_keys(self.fusion, FUSION, "fusion: ")
        self.fusion = {**FUSION, **self.fusion}
        check_choice(self.fusion, "conf_type", CONF_TYPES, source="fusion")
        _check_keys(self.thresholds, THRESHOLD_KEYS, "thresholds: ")
        self.thresholds = {"default": {}, "per_type": {}, **self.thresholds}
        for i, m in enumerate(self.members):
            _check_member_types(m, i)
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ConfigError(f"manifest member names must be unique, got {names}")
        for m in self.members:
            if self.kinds is not None and m.kind not in self.kinds:
                raise ConfigError(f"member {m.name!r}: "
                                  f"{unknown_name_message('member kind', m.kind, self.kinds)}")
            bad = [f for f in m.flips if f not in FLIPS]
            if bad:
                raise ConfigError(f"member {m.name!r}: unknown flips {bad} (use {FLIPS})")

    def of_kind(self, *kinds: str) -> list[Member]:
        """Members of the given kinds, in manifest order."""
        return [m for m in self.members if m.kind in kinds]

    def run_path(self, member: Member) -> Path:
        """The member's run folder (relative paths resolved against :attr:`root`)."""
        path = Path(member.run)
        return path if path.is_absolute() else self.root / path

    def to_dict(self) -> dict:
        """Plain data (what :func:`save_manifest` writes)."""
        return {"name": self.name, "setup": self.setup,
                "members": [asdict(m) for m in self.members],
                "fusion": dict(self.fusion), "thresholds": self.thresholds}

    @classmethod
    def from_dict(cls, data: dict, root: Path = Path("."), source: str = "manifest",
                  kinds: Registry | Iterable[str] | None = MEMBERS) -> Manifest:
        """Build from plain data; a missing key is a :class:`DataError`, an unknown key or an
        invalid value (unknown member kind, flip, set-up or ``fusion.conf_type``) a
        :class:`ConfigError` naming ``source``."""
        if not isinstance(data, dict):
            raise DataError(source, "manifest must be a mapping")
        for key in ("fusion", "thresholds"):
            if not isinstance(data.get(key) or {}, dict):
                raise DataError(source, f"{key!r} must be a mapping")
        try:
            _check_keys(data, KEYS)
            member_keys = [f.name for f in fields(Member)]
            for i, m in enumerate(data["members"] or []):
                if isinstance(m, dict):
                    _check_keys(m, member_keys, f"members[{i}]: ")
            members = [Member(**m) for m in data["members"]]
            return cls(name=str(data["name"]), setup=str(data["setup"]), members=members,
                       fusion=dict(data.get("fusion") or {}),
                       thresholds=dict(data.get("thresholds")
                                       or {"default": {}, "per_type": {}}),
                       root=root, kinds=kinds)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        except KeyError as exc:
            raise DataError(source, f"missing key {exc}") from None
        except TypeError as exc:
            raise DataError(source, f"bad member entry ({exc})") from None


def _check_keys(data: dict, valid: Iterable[str], where: str = "") -> None:
    """A one-line :class:`ConfigError` for the first key of ``data`` that ``valid`` lacks,
    naming it, the closest valid key and every valid key (``where`` prefixes it)."""
    valid = list(valid)
    for key in data:
        if key not in valid:
            raise ConfigError(f"{where}{unknown_name_message('key', key, valid)}")


def _check_member_types(m: Member, i: int) -> None:
    """A :class:`ConfigError` for a member field of the wrong type (a YAML typo such as
    ``box_weight: [1]``) now, rather than a TypeError deep inside fusion later."""
    where = f"member {m.name!r}" if isinstance(m.name, str) else f"members[{i}]"
    problems = [key for key in ("name", "kind") if not isinstance(getattr(m, key), str)]
    if not isinstance(m.run, (str, os.PathLike)):
        problems.append("run")
    if m.config is not None and not isinstance(m.config, str):
        problems.append("config")
    if problems:
        raise ConfigError(f"{where}: {', '.join(problems)} must be a string")
    for key in ("box_weight", "mask_weight"):
        value = getattr(m, key)
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ConfigError(f"{where}: {key} {value!r} is not a number")
    if not isinstance(m.flips, (list, tuple)):
        raise ConfigError(f"{where}: flips {m.flips!r} is not a list")


def load_manifest(path: str | Path, kinds: Registry | Iterable[str] | None = MEMBERS
                  ) -> Manifest:
    """Read a ``.yaml``/``.yml``/``.json`` manifest (relative run paths: working directory).

    Args:
        path: the manifest file.
        kinds: the member kinds accepted (default: the registered ones; ``None`` accepts any
            kind). An unknown kind is a one-line :class:`ConfigError` naming the
            file, the member and the kind.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "manifest file not found")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot parse manifest: {str(exc).splitlines()[0]}") from None
    return Manifest.from_dict(data, source=str(path), kinds=kinds)


def save_manifest(manifest: Manifest, path: str | Path) -> Path:
    """Write the manifest atomically as YAML (or JSON for a ``.json`` path)."""
    path = Path(path)
    data = manifest.to_dict()
    text = json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(
        data, sort_keys=False)
    atomic_write_text(path, text)
    return path
