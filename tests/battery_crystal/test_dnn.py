import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from ensemblab.projects.battery_crystal.features import CLASSES, add_derived, preprocessor_factory
from ensemblab.synthetic.battery import battery_table
from ensemblab.tabular.dnn import MemberMLPModule, fit_members
from ensemblab.tabular.dnn_ensemble import DNNEnsembleClassifier


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_members_train_independently_and_restore_best_weights():
    torch.manual_seed(0)
    n = 60
    x = torch.randn(1, n, 4).expand(2, n, 4).contiguous()
    y = (x[0, :, 0] > 0).long()
    train = torch.zeros(2, n, dtype=torch.bool)
    train[0, :40] = True  # member 1 has no training rows: its weights must not move
    val = torch.zeros(2, n, dtype=torch.bool)
    val[:, 40:] = True
    module = MemberMLPModule(n_members=2, in_features=4, n_classes=2, hidden=(8,),
                             dropout=[0.0, 0.0], weight_decay=[0.0, 0.0], lr=1e-2)
    before = [p.detach().clone() for p in module.net.parameters()]
    fit_members(module, (x, torch.zeros(2, n, 0, dtype=torch.long), y, train, val),
                max_epochs=60, patience=100, val_every=1)
    after = list(module.net.parameters())
    assert all(torch.equal(b[1], a[1]) for b, a in zip(before, after))
    assert not all(torch.equal(b[0], a[0]) for b, a in zip(before, after))
    probs = module.predict_proba(x, torch.zeros(2, n, 0, dtype=torch.long))
    acc = (probs[0, 40:].argmax(-1) == y[40:]).float().mean()
    assert acc > 0.8
    assert module.best_val[0] < 0.5  # restored snapshot is the best validation epoch's


@pytest.mark.parametrize("encoding", ["onehot", "embedding"])
def test_dnn_learns_synthetic_task_well_above_chance(encoding):
    df = add_derived(battery_table(300, seed=0))
    y = np.array([CLASSES.index(v) for v in df["Crystal System"]])
    train, test = np.arange(220), np.arange(220, 300)
    model = DNNEnsembleClassifier(
        preprocessor_factory("honest", encoding), 3,
        grid=[{"hidden": (32, 32), "dropout": 0.1, "weight_decay": 1e-4},
              {"hidden": (32,), "dropout": 0.2, "weight_decay": 1e-3}],
        inner_folds=3, max_epochs=150, seed=0)
    model.fit(df.iloc[train], y[train])
    f1 = f1_score(y[test], model.predict(df.iloc[test]), average="macro")
    assert len(model.search_) == 2 and model.selected_ in model.search_
    probs = model.predict_proba(df.iloc[test])
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert f1 > 0.6, f1  # chance is ~0.33
