"""ONNX export of a run's network and the onnxruntime model that runs it.

``ensemblab <project> export --format onnx`` writes two files: the network of the run's best
checkpoint as ONNX (``RUN/model.onnx`` by default, eval graph, float32 ``NCHW`` input named
``image``, logits named ``logits``, batch and, where the network allows, height and width
dynamic) and beside it the settings a deployment needs to feed it and read its output
(``RUN/model.json``: input size and normalisation, classes, tiling, activation). A project only
supplies the network, an example input and its settings (:class:`OnnxSpec`); this module does
the export, the settings file and the runtime side.

``predict --runtime onnx`` swaps the torch network for :class:`OnnxRuntimeModel`, a module that
runs the ONNX file with onnxruntime on the CPU, so the project's pre- and post-processing stay
the same code for both runtimes.

A network whose parts are joined by torch code that does not export (a detector's anchors,
NMS and RoIAlign between its backbone and its heads) is exported in parts: the main graph
names its outputs (:attr:`OnnxSpec.outputs`) and every further graph (:class:`OnnxGraph`, in
:attr:`OnnxSpec.parts`) goes beside it as ``model.<part>.onnx``, listed in the settings;
:func:`load_onnx_part` opens one.

``onnx`` and ``onnxruntime`` are the optional extra ``ensemblab[onnx]``; they are imported only
by the functions that need them.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ensemblab.engine.runs import best_checkpoint
from ensemblab.errors import ConfigError, DataError
from ensemblab.io import atomic_path, write_json

ONNX_NAME = "model.onnx"
"""The default file ``export --format onnx`` writes into the run folder."""
ONNX_FORMAT = "ensemblab-onnx"
"""``format`` of the settings file."""
OPSET = 17
"""ONNX opset of the exported graphs."""
INPUT_NAME, OUTPUT_NAME = "image", "logits"
MISSING_RUNTIME = "--runtime onnx needs onnxruntime: pip install 'ensemblab[onnx]'"
MISSING_ONNX = "export --format onnx needs onnx: pip install 'ensemblab[onnx]'"


@dataclass
class OnnxGraph:
    """A further graph of a network exported in parts (:attr:`OnnxSpec.parts`).

    Attributes:
        model: the module; ``model(*inputs.values())`` returns a tensor or a tuple of them.
        inputs: ``{name: example tensor}`` in the order ``model`` takes them (traced once).
        outputs: the names of its outputs, in order.
        dynamic_axes: ``{input or output name: {axis: symbolic size name}}``.
    """

    model: nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


@dataclass
class OnnxSpec:
    """What a project hands to :func:`export_onnx`.

    Attributes:
        model: the network, ``[N, C, H, W]`` float32 -> logits ``[N, K, H, W]``; exported in
            eval mode (train-only parts such as dropout or feature enhancement drop out).
        example: an input ``[1, C, H, W]`` the network accepts (traced once).
        settings: the pre- and post-processing a deployment needs (JSON types only):
            ``classes``, ``input`` (size, normalisation), ``tiling``, ``output`` ...
        dynamic_hw: height and width of the input may vary at run time (else only the batch).
        outputs: ``{name: {axis: symbolic size name}}`` of the network's outputs, in order (a
            network that returns a tuple); None: one output ``logits`` with the input's axes.
        parts: further graphs, written beside the main one as ``<stem>.<part>.onnx``.
    """

    model: nn.Module
    example: torch.Tensor
    settings: dict[str, Any] = field(default_factory=dict)
    dynamic_hw: bool = True
    outputs: dict[str, dict[int, str]] | None = None
    parts: dict[str, OnnxGraph] = field(default_factory=dict)


def settings_path(onnx_path: str | Path) -> Path:
    """The settings file beside an ONNX file: ``model.onnx`` -> ``model.json``."""
    return Path(onnx_path).with_suffix(".json")


def part_path(onnx_path: str | Path, part: str) -> Path:
    """The file of graph ``part`` beside an ONNX file: ``model.onnx`` -> ``model.<part>.onnx``."""
    return Path(onnx_path).with_suffix(f".{part}.onnx")


def onnx_path(run_dir: str | Path) -> Path:
    """The ONNX file of a run folder (``RUN/model.onnx``), checked to exist.

    Raises:
        DataError: the run has no ONNX file or no settings file beside it.
    """
    path = Path(run_dir) / ONNX_NAME
    if not path.is_file():
        raise DataError(path, "not found: write it with `export --format onnx` first")
    if not settings_path(path).is_file():
        raise DataError(settings_path(path), "not found: the ONNX file lost its settings; "
                                             "export it again")
    return path


class _AdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two matrix products, so it exports with dynamic H and W.

    Bin ``i`` of ``k`` over ``n`` pixels averages ``[floor(i n / k), ceil((i + 1) n / k))``,
    as torch's kernel does.
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = nn.modules.utils._pair(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        rows = _pool_matrix(height, self.output_size[0], x)
        cols = _pool_matrix(width, self.output_size[1], x)
        return rows @ x @ cols.T


def _pool_matrix(size, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``[bins, size]`` averaging weights of adaptive average pooling along one axis."""
    i = torch.arange(bins, device=like.device)
    start = torch.div(i * size, bins, rounding_mode="floor")
    end = torch.div((i + 1) * size + bins - 1, bins, rounding_mode="floor")
    pos = torch.arange(size, device=like.device)
    inside = ((pos[None] >= start[:, None]) & (pos[None] < end[:, None])).to(like.dtype)
    return inside / inside.sum(1, keepdim=True)


def exportable(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` whose adaptive average pools (other than global ones)
    export with dynamic input sizes (the pyramid pooling of UPerNet / PSPNet)."""
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and \
                    nn.modules.utils._pair(child.output_size) != (1, 1):
                setattr(module, name, _AdaptiveAvgPool2d(child.output_size))
    return model


def _write_graph(onnx, model: nn.Module, inputs: dict[str, torch.Tensor],
                 outputs: list[str], dynamic_axes: dict[str, dict[int, str]],
                 out: Path) -> None:
    """Trace ``model`` (eval mode, float32, CPU) on ``inputs`` into ``out``, atomically, and
    check the file."""
    model = model.float().cpu().eval()  # export restores the mode it found: set it here
    examples = tuple(x.float().cpu() for x in inputs.values())
    with atomic_path(out) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation / tracer notes
        torch.onnx.export(model, examples, str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=list(inputs), output_names=outputs,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
        onnx.checker.check_model(str(tmp))


def export_onnx(spec: OnnxSpec, out: str | Path, run_dir: str | Path | None = None
                ) -> tuple[Path, Path]:
    """Write ``spec.model`` as ONNX (and its :attr:`~OnnxSpec.parts` beside it) and its
    settings file beside it, all atomically.

    Args:
        spec: the network, an example input and the settings.
        out: the ONNX file to write; the settings go to :func:`settings_path` of it, the parts
            to :func:`part_path` of it.
        run_dir: the run the weights came from (its best checkpoint is named in the settings).

    Returns:
        ``(ONNX file, settings file)``. The settings hold ``format`` (``"ensemblab-onnx"``),
        ``opset``, ``input`` (``name``, ``layout``, ``dtype``, ``channels``, ``dynamic_hw``,
        ``example_hw`` and the project's own input keys), ``output`` (``name``, or ``names``
        of a network with several outputs, and the project's keys), ``parts`` (``{part:
        {file, inputs, outputs}}``, when there are any), ``checkpoint`` and every other key of
        ``spec.settings``.

    Raises:
        ConfigError: the ``onnx`` package is missing.
    """
    try:
        import onnx
    except ImportError:
        raise ConfigError(MISSING_ONNX) from None
    out = Path(out)
    model = exportable(spec.model) if spec.dynamic_hw else copy.deepcopy(spec.model)
    example = spec.example.float().cpu()
    axes = {0: "batch", 2: "height", 3: "width"} if spec.dynamic_hw else {0: "batch"}
    outputs = spec.outputs if spec.outputs is not None else {OUTPUT_NAME: axes}
    _write_graph(onnx, model, {INPUT_NAME: example}, list(outputs),
                 {INPUT_NAME: axes, **outputs}, out)
    parts = {}
    for name, graph in spec.parts.items():
        target = part_path(out, name)
        _write_graph(onnx, copy.deepcopy(graph.model), graph.inputs, list(graph.outputs),
                     graph.dynamic_axes, target)
        parts[name] = {"file": target.name, "inputs": list(graph.inputs),
                       "outputs": list(graph.outputs)}
    settings = dict(spec.settings)
    settings["input"] = {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32",
                         "channels": int(example.shape[1]), "dynamic_hw": spec.dynamic_hw,
                         "example_hw": list(example.shape[2:]), **settings.get("input", {})}
    named = {"name": OUTPUT_NAME} if spec.outputs is None else {"names": list(outputs)}
    settings["output"] = {**named, **settings.get("output", {})}
    if parts:
        settings["parts"] = parts
    header = {"format": ONNX_FORMAT, "opset": OPSET, "torch": torch.__version__}
    if run_dir is not None:
        header["checkpoint"] = str(best_checkpoint(run_dir).name)
    target = settings_path(out)
    write_json(target, {**header, **settings})
    return out, target


def read_settings(path: str | Path) -> dict[str, Any]:
    """The settings file of an ONNX file (:func:`settings_path`)."""
    target = settings_path(path)
    try:
        settings = json.loads(target.read_text())
    except (OSError, ValueError) as err:
        raise DataError(target, f"unreadable ONNX settings: {err}") from None
    if settings.get("format") != ONNX_FORMAT:
        raise DataError(target, f"not an {ONNX_FORMAT} settings file")
    return settings


def require_onnxruntime():
    """The ``onnxruntime`` module.

    Raises:
        ConfigError: one line naming the extra to install.
    """
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(MISSING_RUNTIME) from None
    return onnxruntime


class OnnxRuntimeModel(nn.Module):
    """An ONNX file run by onnxruntime on the CPU, called like the torch network it replaces.

    ``forward`` takes a float tensor on any device and returns the first output as a float32
    tensor on the same device; :meth:`run` takes every input and returns every output. The
    session uses ``torch.get_num_threads()`` intra-op threads (``--threads`` of the CLI).

    Args:
        path: the ONNX file.
    """

    def __init__(self, path: str | Path):
        super().__init__()
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, torch.get_num_threads())
        options.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.input_name = self.input_names[0]

    def run(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        """Every output (float32, on the first input's device) of the graph's inputs in order."""
        feed = {name: x.detach().float().cpu().contiguous().numpy()
                for name, x in zip(self.input_names, inputs, strict=True)}
        return [torch.from_numpy(out).to(inputs[0].device)
                for out in self.session.run(None, feed)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]


def load_onnx(run_dir: str | Path) -> tuple[OnnxRuntimeModel, dict[str, Any]]:
    """``(runtime model, settings)`` of a run's exported ONNX file (:func:`onnx_path`)."""
    require_onnxruntime()
    path = onnx_path(run_dir)
    return OnnxRuntimeModel(path), read_settings(path)


def load_onnx_part(run_dir: str | Path, part: str) -> OnnxRuntimeModel:
    """The runtime model of graph ``part`` of a run's export (:attr:`OnnxSpec.parts`).

    Raises:
        DataError: the export has no such part, or its file is missing.
    """
    require_onnxruntime()
    main = onnx_path(run_dir)
    if part not in read_settings(main).get("parts", {}):
        raise DataError(settings_path(main), f"no ONNX part {part!r}: export it again")
    path = part_path(main, part)
    if not path.is_file():
        raise DataError(path, "not found: the export is incomplete; export it again")
    return OnnxRuntimeModel(path)
