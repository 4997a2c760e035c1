"""Crystal-system classification of Li-ion silicate cathodes (the battery DNN paper).

"Utilizing Deep Learning for Crystal System Classification in Lithium-Ion Batteries": a DNN on
the Materials-Project table (formation energy, energy above hull, band gap, sites, density,
volume, formula, space group, band-structure flag) versus SVM, logistic regression, naive
Bayes and a Voting model. Reproduced honestly: the space group determines the crystal system,
so it is excluded from the default (``honest``) feature set and flagged by the leakage check.
"""

# What this project writes in the run record (``RUN/run.json``, :mod:`ensemblab.run_record`).
PROJECT = "battery_crystal"
MODEL = "model"  # one fitted model's run folder (train)
