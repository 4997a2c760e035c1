"""Res-UNet learners and their RUEL voting ensembles (mineral optical microscopy)."""

# What this project writes in the run record (``RUN/run.json``, :mod:`ensemblab.run_record`);
# defined in the package so the report reads them without importing the model code.
PROJECT = "mineral_ruel"
LEARNER = "learner"  # a trained learner's run folder (train)
ENSEMBLE = "ensemble"  # an ensemble output folder (ensemble), which predict and seeds read
# An ensemble folder without a run record is known by its manifest.
ENSEMBLE_MARKERS = {"ensemble.json": ENSEMBLE}
