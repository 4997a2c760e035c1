"""ensemblab: reproducible implementations of five papers on one small shared core.

The core (this package) holds data codecs and loaders (:mod:`ensemblab.data`), metrics
(:mod:`ensemblab.metrics`), voting (:mod:`ensemblab.voting`), synthetic data generators
(:mod:`ensemblab.synthetic`), Lightning training glue (:mod:`ensemblab.engine`) and the CLI.
Sibling folders are mapped in as :mod:`ensemblab.ensemble`, :mod:`ensemblab.tabular`,
:mod:`ensemblab.multimodal` and :mod:`ensemblab.projects`.
"""

__version__ = "0.1.0"

PROJECTS = ("sartorius_cells", "mineral_ruel", "fre_unet", "crossattn_vl", "battery_crystal")
