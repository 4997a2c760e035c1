"""Packaging for ensemblab: one import root, sibling folders mapped in with ``package_dir``.

``src/ensemblab`` is the core. ``ensemble/``, ``tabular/``, ``multimodal/`` and ``projects/``
become ``ensemblab.ensemble``, ``ensemblab.tabular``, ``ensemblab.multimodal`` and
``ensemblab.projects`` (detectron2 maps ``projects/PointRend/point_rend`` the same way). We never
call a bare ``find_packages()`` at the repository root: ``datasets`` and ``tools`` are not
packages, and generic top-level names would clobber other distributions.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
SIBLINGS = {"ensemble": "ensemble", "tabular": "tabular", "multimodal": "multimodal",
            "projects": "projects"}

package_dir = {"ensemblab": "src/ensemblab"}
packages = ["ensemblab"] + [f"ensemblab.{p}" for p in find_packages("src/ensemblab")]
for name, folder in SIBLINGS.items():
    package_dir[f"ensemblab.{name}"] = folder
    packages.append(f"ensemblab.{name}")
    packages += [f"ensemblab.{name}.{p}" for p in find_packages(folder)]

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "ensemblab.projects": ["*/configs/*.yaml", "*/configs/*/*.yaml", "*/README.md"],
    },
    include_package_data=True,
)
