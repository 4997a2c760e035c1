"""Caption metrics through the COCO caption evaluation code (``pycocoevalcap``).

BLEU-1..4 (``closest`` reference length), METEOR 1.5 (Java), ROUGE-L (beta 1.2) and CIDEr as
implemented by ``pycocoevalcap.cider.Cider``, which is CIDEr-D (n-grams 1-4, Gaussian length
penalty sigma = 6, clipped counts, x10) with document frequencies taken from the references of
the evaluated corpus. Text is tokenised by the Stanford PTB tokenizer (lower-case, punctuation
removed) as the COCO server does; ``tokenize=False`` scores pre-split text as is (what
``nlg-eval`` does). METEOR and the tokenizer need ``java`` on the PATH.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from ensemblab.errors import EnsemblabError

METRIC_NAMES = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def _tokenize(captions: Mapping[Any, Sequence[str]]) -> dict[Any, list[str]]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})


class CaptionScorer:
    """Caption scorers that keep one METEOR Java process for several corpora.

    Starting METEOR (loading its paraphrase tables) takes seconds to tens of seconds; scoring a
    corpus afterwards takes milliseconds. Use as a context manager, or call :meth:`close`.

    Args:
        tokenize: run the PTB tokenizer first (the COCO protocol).
        metrics: subset of :data:`METRIC_NAMES` to compute (METEOR is the slow one).
    """

    def __init__(self, tokenize: bool = True, metrics: Sequence[str] = METRIC_NAMES) -> None:
        unknown = set(metrics) - set(METRIC_NAMES)
        if unknown:
            raise ValueError(f"unknown caption metrics {sorted(unknown)}; "
                             f"choose from {METRIC_NAMES}")
        if (tokenize or "METEOR" in metrics) and shutil.which("java") is None:
            raise EnsemblabError("caption metrics need Java (METEOR, PTB tokenizer): install a "
                                 "JRE, or pass tokenize=False and leave out METEOR")
        self.tokenize = tokenize
        self.metrics = tuple(metrics)
        self._meteor = None

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the METEOR process (the wrapper itself only does so at garbage collection)."""
        if self._meteor is not None:
            self._meteor.meteor_p.stdin.close()
            self._meteor.meteor_p.kill()
            self._meteor.meteor_p.wait()
            self._meteor = None

    def score(
        self, gts: Mapping[Any, Sequence[str]], res: Mapping[Any, Sequence[str]]
    ) -> dict[str, float]:
        """Corpus-level scores of one corpus (arguments as in :func:`caption_scores`)."""
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        if set(gts) != set(res):
            raise ValueError("references and candidates must have the same ids")
        bad = [k for k, v in res.items() if len(v) != 1]
        if bad:
            raise ValueError(f"need exactly one candidate caption per id; ids {bad[:5]} differ")
        if self.tokenize:
            gts, res = _tokenize(gts), _tokenize(res)
        gts = {k: list(v) for k, v in gts.items()}
        res = {k: list(v) for k, v in res.items()}
        out: dict[str, float] = {}
        if any(m.startswith("Bleu") for m in self.metrics):
            bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
            out.update({f"Bleu_{n + 1}": float(bleu[n]) for n in range(4)})
        if "METEOR" in self.metrics:
            if self._meteor is None:
                from pycocoevalcap.meteor.meteor import Meteor

                self._meteor = Meteor()
            out["METEOR"] = float(self._meteor.compute_score(gts, res)[0])
        if "ROUGE_L" in self.metrics:
            out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
        if "CIDEr" in self.metrics:
            out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
        return {m: out[m] for m in self.metrics}


def caption_scores(
    gts: Mapping[Any, Sequence[str]],
    res: Mapping[Any, Sequence[str]],
    tokenize: bool = True,
    metrics: Sequence[str] = METRIC_NAMES,
) -> dict[str, float]:
    """Corpus-level caption scores (one-shot :class:`CaptionScorer`).

    Args:
        gts: ``{id: [reference caption, ...]}``.
        res: ``{id: [generated caption]}`` (exactly one per id, same ids as ``gts``).
        tokenize: run the PTB tokenizer first (the COCO protocol).
        metrics: subset of :data:`METRIC_NAMES` to compute (METEOR is the slow one).

    Returns:
        ``{"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}`` (those asked).
    """
    with CaptionScorer(tokenize=tokenize, metrics=metrics) as scorer:
        return scorer.score(gts, res)
