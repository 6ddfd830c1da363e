"""Learning from brokers: signed and declined pairings as training pairs, and fine-tuning on them.

A signed pairing says "this outcome answers this need"; a declined one keeps
its reason as the label. Only reasons about the fit itself (收益不明确, 其他)
make a declined outcome a hard negative for the text model: a pair declined
for its price, the firm's capacity or the university's will is still on topic,
and teaching the encoder otherwise would corrupt it.
"""
from __future__ import annotations

import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .documents import document_text
from .models import Pairing
from .vocab import DECLINE_REASONS

# Decline reasons that say the outcome does not fit the need's content.
TEXT_NEGATIVE_REASONS = frozenset({"benefit_unclear", "other"})


@dataclass
class TrainingPair:
    """One broker judgement on a need–outcome pair."""

    pairing_id: int
    need_id: int
    outcome_id: int
    need_text: str
    outcome_text: str
    label: int  # 1 signed, 0 declined
    stage: str
    decline_reason: str | None
    decline_reason_label: str | None
    decline_note: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def training_pairs(session: Session) -> list[TrainingPair]:
    """Every signed or declined pairing that names an outcome, oldest first."""
    rows = session.scalars(
        select(Pairing).where(Pairing.stage.in_(("signed", "declined")), Pairing.outcome_id.is_not(None))
        .order_by(Pairing.id)
    ).unique()
    out = []
    for p in rows:
        if p.need is None or p.outcome is None:
            continue
        out.append(TrainingPair(
            pairing_id=p.id, need_id=p.need_id, outcome_id=p.outcome_id,
            need_text=document_text(p.need), outcome_text=document_text(p.outcome),
            label=1 if p.stage == "signed" else 0, stage=p.stage, decline_reason=p.decline_reason,
            decline_reason_label=DECLINE_REASONS.get(p.decline_reason) if p.decline_reason else None,
            decline_note=p.decline_note,
        ))
    return out


@dataclass
class TuneExamples:
    """(need, signed outcome, optional hard-negative outcome) triples for contrastive training."""

    triples: list[tuple[str, str, str | None]]
    positives: int
    hard_negatives: int


def tune_examples(pairs: list[TrainingPair]) -> TuneExamples:
    """Turn broker judgements into training triples: each signed pair, with a fit-related decline of the same need."""
    negatives: dict[int, list[str]] = {}
    for p in pairs:
        if p.label == 0 and p.decline_reason in TEXT_NEGATIVE_REASONS:
            negatives.setdefault(p.need_id, []).append(p.outcome_text)
    triples = []
    used = 0
    for p in pairs:
        if p.label != 1:
            continue
        neg = (negatives.get(p.need_id) or [None])[0]
        used += neg is not None
        triples.append((p.need_text, p.outcome_text, neg))
    return TuneExamples(triples, len(triples), used)


def fine_tune(model_dir: str | Path, examples: TuneExamples, out_dir: str | Path, *, epochs: int = 1,
              learning_rate: float = 2e-5, batch_size: int = 8, seed: int = 0,
              query_prefix: str = "", passage_prefix: str = "", max_tokens: int = 256) -> Path:
    """Fine-tune a sentence-transformers model with in-batch and hard negatives; save it to ``out_dir``.

    The loss is the multiple-negatives ranking loss (each need against every
    outcome in the batch plus the hard negatives), in a plain torch loop: the
    library's trainer needs extra packages and its MultipleNegativesRankingLoss
    wants a negative on every row, which broker labels rarely give.
    Prefixes are those of the model's profile. Texts are cut at ``max_tokens``
    while training (the saved model keeps its own limit): activations grow with
    the square of the length, and a batch padded to 512 tokens needed over 20 GB.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    if not examples.triples:
        raise ValueError("no signed pairings to learn from")
    random.seed(seed)
    torch.manual_seed(seed)
    model = SentenceTransformer(str(model_dir), device="cpu")
    saved_limit = model.max_seq_length
    model.max_seq_length = min(max_tokens, saved_limit or max_tokens)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    triples = list(examples.triples)
    for _ in range(epochs):
        random.shuffle(triples)
        for start in range(0, len(triples), batch_size):
            batch = triples[start : start + batch_size]
            anchors = [query_prefix + a for a, _, _ in batch]
            positives = [passage_prefix + p for _, p, _ in batch]
            # Hard negatives join the candidate pool of every anchor in the batch.
            negatives = [passage_prefix + n for _, _, n in batch if n]
            columns = [anchors, positives + negatives]
            features = [model.tokenize(texts) for texts in columns]
            optimizer.zero_grad()
            loss = _ranking_loss(model, features)
            loss.backward()
            optimizer.step()
    model.eval()
    model.max_seq_length = saved_limit
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.save(str(out_dir))
    return out_dir


# Cosine × 20, as sentence-transformers' MultipleNegativesRankingLoss scales it.
_SCALE = 20.0


def _ranking_loss(model, features):
    """Cross-entropy of each anchor against all candidates, the i-th candidate being its positive."""
    import torch

    anchors = model(features[0])["sentence_embedding"]
    candidates = model(features[1])["sentence_embedding"]
    anchors = torch.nn.functional.normalize(anchors, dim=-1)
    candidates = torch.nn.functional.normalize(candidates, dim=-1)
    scores = anchors @ candidates.T * _SCALE
    labels = torch.arange(len(anchors))
    return torch.nn.functional.cross_entropy(scores, labels)
