"""The paper's ensemble: consensus of the members on one image (``consensus.py``), weights and
thresholds fitted on validation (``fitting.py``), the three set-ups scored and submitted from
one manifest (``setups.py``)."""
