import csv
import json

import numpy as np

from ensemblab.cli import main
from ensemblab.synthetic.battery import write_battery_csv


def test_train_evaluate_predict_on_synthetic(tmp_path, capsys):
    data = tmp_path / "data"
    write_battery_csv(data / "lithium-ion_batteries.csv", n_rows=200, seed=0)
    new = write_battery_csv(tmp_path / "new.csv", n_rows=20, seed=5, with_label=False)
    run = tmp_path / "run"
    fast = ["dnn.max_epochs=120", "evaluate.models=[dnn,rf]", "evaluate.holdout_seeds=2"]
    assert main(["battery_crystal", "train", "--config", "cpu_quick", "--data", str(data),
                 "--out", str(run), *fast]) == 0
    assert (run / "model.json").is_file() and (run / "model.npz").is_file()
    assert (run / "config.yaml").is_file() and not (run / "model.pkl").exists()
    assert main(["battery_crystal", "evaluate", "--run", str(run), "--data", str(data)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["leaky_features"] == ["Spacegroup"]
    honest = metrics["results"]["honest"]
    for model in ("dnn", "rf"):
        for protocol in ("holdout", "grouped_cv"):
            r = honest[model][protocol]
            for key in ("macro_f1_mean", "macro_f1_std", "macro_precision_mean",
                        "macro_recall_mean", "accuracy_mean"):
                assert 0.0 <= r[key] <= 1.0
    assert honest["dnn"]["holdout"]["macro_f1_mean"] > 0.6  # chance ~0.33
    # the leaky set: the space group alone gives the label away
    assert metrics["results"]["paper"]["rf"]["holdout"]["macro_f1_mean"] > 0.95
    text = (run / "results.md").read_text()
    assert "LEAKY" in text and "0.81" in text
    assert (run / "confusion.png").stat().st_size > 1000
    out = tmp_path / "pred"
    assert main(["battery_crystal", "predict", "--run", str(run), "--input", str(new),
                 "--out", str(out)]) == 0
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20
    probs = np.array([[float(r[f"p_{c}"]) for c in ("monoclinic", "orthorhombic", "triclinic")]
                      for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=2e-3)
    assert all(r["predicted"] in ("monoclinic", "orthorhombic", "triclinic") for r in rows)
