"""The paper's DNN for tabular classification, as M independent networks trained at once.

The crystal-system paper's DNN is a stack of fully connected layers with ReLU and dropout and
a softmax output over the three crystal systems; here it is trained with Adam on
cross-entropy with early stopping on the validation loss. On a 339-row table one such fit takes
milliseconds of arithmetic and far longer in framework overhead, while an honest evaluation
needs hundreds of fits (protocols x folds x nested hyper-parameter search x ensemble members).
So :class:`MemberMLP` holds M networks of one shape as stacked weight tensors
(``W[M, in, out]``, applied with one batched matmul); each member has its own input
standardisation, training / validation rows (masks), dropout rate and L2 strength, and its own
early-stopping snapshot. Training is full-batch on CPU tensors through one lean Lightning
``Trainer`` (no logger, checkpoint or progress bar) per group of members — numerically the same
as M separate fits, at about the cost of one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn

from ensemblab.engine.optim import build_optimizer
from ensemblab.engine.trainer import quiet_lightning


class MemberMLP(nn.Module):
    """M MLPs of one shape: inputs -> [Linear -> ReLU -> Dropout] x depth -> Linear.

    Args:
        n_members: M.
        in_features: numeric inputs F.
        n_classes: C.
        hidden: widths of the hidden layers, e.g. ``(128, 64)``.
        dropout: one rate per member (length M) or a single rate.
        cardinalities: embedding table sizes, one per categorical input (empty: none).
        embedding_dim: width of every embedding.
    """

    def __init__(self, n_members: int, in_features: int, n_classes: int,
                 hidden: Sequence[int] = (64, 64), dropout: float | Sequence[float] = 0.1,
                 cardinalities: Sequence[int] = (), embedding_dim: int = 4):
        super().__init__()
        rates = [float(dropout)] * n_members if isinstance(dropout, int | float) else dropout
        self.register_buffer("dropout", torch.tensor(rates, dtype=torch.float32))
        self.embeddings = nn.ParameterList(
            nn.Parameter(torch.randn(n_members, card, embedding_dim) * 0.1)
            for card in cardinalities)
        widths = [in_features + embedding_dim * len(cardinalities), *hidden, n_classes]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            bound = math.sqrt(6.0 / fan_in)  # He (Kaiming) uniform for ReLU, per member
            self.weights.append(nn.Parameter(torch.empty(n_members, fan_in, fan_out)
                                             .uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.zeros(n_members, 1, fan_out)))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every member.

        Args:
            x_num: float[M, N, F] (each member's own standardisation of the same rows).
            x_cat: int64[M, N, K] category indices (each member's own coding), or None.

        Returns:
            float[M, N, C] logits (softmax is applied in the loss / at prediction).
        """
        h = x_num
        if len(self.embeddings):
            member = torch.arange(h.shape[0], device=h.device)[:, None]
            h = torch.cat([h, *(table[member, x_cat[:, :, k]] for k, table in
                                enumerate(self.embeddings))], dim=2)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
                if self.training:
                    keep = 1.0 - self.dropout[:, None, None]
                    h = h * (torch.rand_like(h) < keep) / keep
        return h

    def l2(self) -> torch.Tensor:
        """float[M]: sum of squared weights (not biases) of each member."""
        return sum(w.pow(2).sum(dim=(1, 2)) for w in self.weights)


class MemberMLPModule(L.LightningModule):
    """Lightning module training a :class:`MemberMLP` full-batch with per-member masks.

    One batch is ``(x_num[M, N, F], x_cat[M, N, K], y[N], train_mask[M, N], val_mask[M, N])``.
    The loss is ``sum_m [CE_m(train rows of m) + weight_decay_m * ||W_m||^2]`` (members are
    independent, so summing keeps each member's gradient its own). Validation logs
    ``val_loss`` = mean over members of their validation cross-entropy (what early stopping
    watches) and keeps, per member, the weights of its own best validation epoch; they are
    restored when training ends.

    Args:
        weight_decay: L2 strength per member (length M) or one value.
        lr: learning rate.
        optimizer: a name of :data:`ensemblab.engine.optim.OPTIMIZERS` without momentum
            (``adam``); ``weight_decay`` stays an L2 term of the loss.
        **net_kwargs: :class:`MemberMLP` arguments.
    """

    def __init__(self, weight_decay: float | Sequence[float] = 1e-4, lr: float = 3e-3,
                 optimizer: str = "adam", **net_kwargs):
        super().__init__()
        self.save_hyperparameters()
        self.net = MemberMLP(**net_kwargs)
        m = net_kwargs["n_members"]
        wd = [float(weight_decay)] * m if isinstance(weight_decay, int | float) else weight_decay
        self.register_buffer("weight_decay", torch.tensor(wd, dtype=torch.float32))
        self.register_buffer("best_val", torch.full((m,), float("inf")))
        self.best_state = [p.detach().clone() for p in self.net.parameters()]

    def forward(self, x_num, x_cat=None):
        return self.net(x_num, x_cat)

    @staticmethod
    def _masked_ce(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """float[M]: mean cross-entropy of each member over its masked rows."""
        m, n, c = logits.shape
        ce = F.cross_entropy(logits.reshape(m * n, c), y.repeat(m), reduction="none")
        mask = mask.float()
        return (ce.view(m, n) * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def training_step(self, batch, batch_idx):
        x_num, x_cat, y, train_mask, _ = batch
        ce = self._masked_ce(self(x_num, x_cat), y, train_mask)
        return (ce + self.weight_decay * self.net.l2()).sum()

    def validation_step(self, batch, batch_idx):
        x_num, x_cat, y, _, val_mask = batch
        ce = self._masked_ce(self(x_num, x_cat), y, val_mask)
        better = ce < self.best_val
        if better.any():
            self.best_val = torch.where(better, ce, self.best_val)
            for saved, p in zip(self.best_state, self.net.parameters()):
                sel = better.view(-1, *([1] * (p.dim() - 1)))
                saved.copy_(torch.where(sel, p.detach(), saved))
        self.log("val_loss", ce.mean(), prog_bar=False, logger=False, batch_size=1)

    def on_fit_end(self):
        with torch.no_grad():
            for saved, p in zip(self.best_state, self.net.parameters()):
                p.copy_(saved)

    def configure_optimizers(self):
        return build_optimizer(self.hparams.optimizer, self.parameters(), lr=self.hparams.lr,
                               weight_decay=0.0)  # the per-member L2 is in the loss

    @torch.no_grad()
    def predict_proba(self, x_num: torch.Tensor, x_cat: torch.Tensor | None = None):
        """float[M, N, C] softmax probabilities of every member (eval mode)."""
        was_training = self.training
        self.eval()
        probs = torch.softmax(self(x_num, x_cat), dim=-1)
        self.train(was_training)
        return probs


class FullBatch:
    """A "dataloader" yielding one fixed batch per epoch (full-batch training)."""

    def __init__(self, batch: tuple):
        self.batch = batch

    def __iter__(self):
        yield self.batch

    def __len__(self) -> int:
        return 1


def fit_members(module: MemberMLPModule, batch: tuple, max_epochs: int = 300,
                patience: int = 10, val_every: int = 5) -> MemberMLPModule:
    """Train ``module`` full-batch with early stopping on ``val_loss``; returns it.

    Args:
        module: the members to train.
        batch: ``(x_num, x_cat, y, train_mask, val_mask)`` (see :class:`MemberMLPModule`).
        max_epochs: epoch limit.
        patience: validation checks without improvement of ``val_loss`` before stopping.
        val_every: epochs between validation checks (and best-weight snapshots).

    Uses a plain, lean ``lightning.Trainer`` on CPU: no logger, checkpoints, progress bar or
    model summary (each of those costs more than an epoch of this model). The whole table is
    one batch (:class:`FullBatch`).
    """
    with quiet_lightning():
        trainer = L.Trainer(
            max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, check_val_every_n_epoch=val_every,
            callbacks=[EarlyStopping("val_loss", patience=patience, mode="min")],
        )
        loader = FullBatch(batch)
        trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    return module
