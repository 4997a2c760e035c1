"""The ablation table: mean ± sample std over seeds, x 100, n/a where a variant has no metric."""

import pytest

from ensemblab.errors import ConfigError
from ensemblab.projects.crossattn_vl.ablation import mean_std, run_ablation, write_table


def test_mean_std_hand_computed():
    assert mean_std([30.0, 34.0]) == pytest.approx((32.0, 2.8284271))  # sqrt(8)
    assert mean_std([5.0]) == (5.0, 0.0)


def test_table_rows(tmp_path):
    results = {"full": [{"CIDEr": 0.30, "i2t_top5": 0.5, "seed": 0},
                        {"CIDEr": 0.34, "i2t_top5": 0.7, "seed": 1}],
               "text_only": [{"CIDEr": 0.1, "seed": 0}]}
    lines = write_table(results, tmp_path).read_text().splitlines()
    assert lines[0] == "| variant | seeds | CIDEr | i2t_top5 |"
    assert lines[2] == "| full | 2 | 32.0 ± 2.8 | 60.0 ± 14.1 |"
    assert lines[3] == "| text_only | 1 | 10.0 | n/a |"
    csv_rows = (tmp_path / "ablation.csv").read_text().splitlines()
    assert csv_rows[0] == "variant,seed,CIDEr,i2t_top5" and csv_rows[3] == "text_only,0,0.1,"


def test_unknown_variant_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no_cbm"):
        run_ablation({}, tmp_path, tmp_path / "out", variants=["full", "no_cbm"])
