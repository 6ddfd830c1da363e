"""Broker judgements as training data (issue: learning from brokers)."""
from __future__ import annotations

from fastapi import APIRouter

from matcher.learning import training_pairs

from ..deps import DB, STAFF, require

router = APIRouter(tags=["对接"])


@router.get("/pairings/training-pairs", summary="训练样本：已签约（正例）与已拒绝（负例，含拒绝原因）的对接",
            dependencies=[require(*STAFF, note="样本含需求全文（包括仅经纪人可见的需求）。")])
def list_training_pairs(db: DB):
    """Every signed or declined pairing as a labelled need–outcome text pair (label 1 signed, 0 declined)."""
    items = [p.as_dict() for p in training_pairs(db)]
    return {"items": items, "total": len(items),
            "signed": sum(p["label"] for p in items), "declined": sum(1 - p["label"] for p in items)}
