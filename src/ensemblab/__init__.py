"""ensemblab: reproducible implementations of five papers on one small shared core.

The core (this package) holds data codecs and loaders (:mod:`ensemblab.data`), metrics
(:mod:`ensemblab.metrics`), voting (:mod:`ensemblab.voting`), synthetic data generators
(:mod:`ensemblab.synthetic`), Lightning training glue (:mod:`ensemblab.engine`) and the CLI.
Sibling folders are mapped in as :mod:`ensemblab.ensemble`, :mod:`ensemblab.tabular`,
:mod:`ensemblab.multimodal` and :mod:`ensemblab.projects`.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``ensemblab.PROJECTS``: names of the installed projects, in the demo's order.

    Read from the ``ensemblab.projects`` entry-point group on first use
    (:func:`ensemblab.installed_projects.installed_projects`).
    """
    if name == "PROJECTS":
        from ensemblab.installed_projects import installed_projects

        return tuple(installed_projects())
    raise AttributeError(f"module 'ensemblab' has no attribute {name!r}")
