"""Decoding predictions into labelled top-k results, and printing them (table or JSON lines).

The served models already output probabilities (softmax is the model's last layer): confidences are used as they
are, never passed through softmax again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Label:
    """One ranked class."""

    label: str
    class_id: int | None
    score: float


@dataclass(frozen=True)
class Prediction:
    """Top-k classes for one image."""

    image: str
    top: tuple[Label, ...]
    model: str = ""
    version: int | None = None

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps({"image": self.image, "model": self.model, "version": self.version,
                           "top": [asdict(t) for t in self.top]})


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def from_outputs(
    outputs: Mapping[str, np.ndarray], top_k: int, labels: Sequence[str] | None = None
) -> list[list[Label]]:
    """Per row, the top-k labels from `class_names`/`scores` (+`class_ids`), or from `probabilities` + labels."""
    if "probabilities" in outputs and (top_k > _k(outputs) or "scores" not in outputs):
        probs = np.asarray(outputs["probabilities"], dtype=np.float64)
        rows = []
        for row in probs:
            ids = np.argsort(-row, kind="stable")[:top_k]
            rows.append([Label(labels[i] if labels and i < len(labels) else str(i), int(i), float(row[i]))
                         for i in ids])
        return rows
    if "scores" not in outputs:
        raise ValueError(f"outputs {sorted(outputs)} have neither 'scores' nor 'probabilities'")
    scores = np.asarray(outputs["scores"])
    names = outputs.get("class_names")
    ids = outputs.get("class_ids")
    rows = []
    for r in range(scores.shape[0]):
        row = []
        for j in range(min(top_k, scores.shape[1])):
            cid = int(ids[r][j]) if ids is not None else None
            if names is not None:
                label = _text(names[r][j])
            elif labels and cid is not None:
                label = labels[cid]
            else:
                label = str(cid)
            row.append(Label(label, cid, float(scores[r][j])))
        rows.append(row)
    return rows


def _k(outputs: Mapping[str, np.ndarray]) -> int:
    scores = outputs.get("scores")
    return int(np.asarray(scores).shape[1]) if scores is not None and np.asarray(scores).ndim == 2 else 0


def from_classifications(rows: Sequence[Sequence[tuple[str, float]]], top_k: int) -> list[list[Label]]:
    """Classify API results (label, score) per example."""
    return [[Label(label, None, float(score)) for label, score in row[:top_k]] for row in rows]


def format_table(predictions: Sequence[Prediction]) -> str:
    """A readable table: one block per image, confidence as a percentage."""
    lines = []
    for p in predictions:
        version = f" v{p.version}" if p.version is not None else ""
        where = f"  ({p.model}{version})" if p.model else ""
        lines.append(f"{p.image}{where}")
        for rank, t in enumerate(p.top, start=1):
            cid = f" [{t.class_id}]" if t.class_id is not None else ""
            lines.append(f"  {rank}. {t.label:<24}{cid:<7}{100 * t.score:6.2f} %")
    return "\n".join(lines)
