"""Packaging guards: one import root, cv2 importable, configs shipped as package data."""

import importlib.metadata
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_top_level_is_only_ensemblab():
    dist = importlib.metadata.distribution("ensemblab")
    assert dist.read_text("top_level.txt").split() == ["ensemblab"]


@pytest.mark.parametrize("name", ["projects", "tools", "ensemble", "tabular", "multimodal"])
def test_sibling_folders_are_not_top_level_modules(name):
    spec = importlib.util.find_spec(name)
    assert spec is None or REPO not in Path(spec.origin or "").parents


def test_datasets_folder_is_not_a_package():
    assert not (REPO / "datasets" / "__init__.py").exists()
    spec = importlib.util.find_spec("datasets")
    assert spec is None or REPO not in Path(spec.origin or "/").parents


def test_sibling_folders_map_into_ensemblab():
    import ensemblab.ensemble
    import ensemblab.multimodal
    import ensemblab.projects
    import ensemblab.tabular

    assert Path(ensemblab.ensemble.__file__).parent == REPO / "ensemble"
    assert Path(ensemblab.projects.__file__).parent == REPO / "projects"
    assert Path(ensemblab.tabular.__file__).parent == REPO / "tabular"
    assert Path(ensemblab.multimodal.__file__).parent == REPO / "multimodal"


def test_cv2_imports():
    import cv2

    assert cv2.imread is not None
    assert cv2.__version__.startswith("4.")


def test_wheel_contains_only_ensemblab_and_ships_configs(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("ensemblab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"ensemblab", next(t for t in tops if t.endswith(".dist-info"))}
    configs = sorted(REPO.glob("projects/*/configs/*.yaml"))
    for cfg in configs:
        rel = cfg.relative_to(REPO / "projects")
        assert f"ensemblab/projects/{rel.as_posix()}" in names
