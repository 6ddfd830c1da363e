"""Structured fit between a need and an outcome, as transparent factors.

Each factor yields a value in [0, 1] or None when a side lacks the data. The
score is ``text_weight × text relevance + Σ weight × value``; a missing value
contributes nothing (so a record with an empty field can never outrank the same
record with the field filled in and fitting) and lowers ``confidence`` instead.
Weights live in :class:`Weights`, one configuration with defaults.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .models import Need, Outcome
from .vocab import LOCALITY_TIERS


@dataclass(frozen=True)
class Weights:
    """How much each factor may add to the text relevance (cosine scale)."""

    text: float = 1.0
    # Text relevance (matcher.retrieval); values chosen with `matcher eval` on the dev sets, see docs/quality.md.
    lexical: float = 0.35          # BM25 z-score, in units of the pool's dense spread
    sentence: float = 0.5          # share of the best sentence for long texts
    long_text_chars: int = 400     # a body this long is also scored sentence by sentence
    fusion: str = "zscore"         # or "rrf" (kept for comparison in the harness)
    # Kept for comparison in the harness, off in the service: BM25 of a long query's N most selective terms
    # only (as Lucene's MoreLikeThis). It would bound a first view's cost at 10^6 outcomes, but at 64 terms
    # it moved 29 % of long needs' top 10 (bench/quality_lexical_cap.py, docs/quality.md).
    lexical_terms: int | None = None
    # Cosine relevance of e5 spreads over a few hundredths between close
    # candidates; factors must tip near-ties, not overrule the text.
    industry_chain: float = 0.01
    maturity: float = 0.008
    cooperation_mode: float = 0.006
    budget: float = 0.006
    locality: float = 0.006
    track_record: float = 0.004
    # Calibrated with `matcher eval` (docs/quality.md): 90 % of the labelled matches the full method
    # finds in the dev sets' top 10 score above it (p10: csl_kw_hard 0.884, csl_goal 0.911).
    weak_below: float = 0.88

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_WEIGHTS = Weights()

LABELS = {
    "industry_chain": "产业链一致",
    "maturity": "成熟度可承接",
    "cooperation_mode": "合作方式匹配",
    "budget": "预算与报价",
    "locality": "地域优先",
    "track_record": "既往签约",
}
# What a firm can absorb: most firms want 中试/产业化, not laboratory results.
_MATURITY_VALUE = {"产业化": 1.0, "中试": 0.9, "小试": 0.5, "实验室": 0.15}
# Technologies that serve many chains (a bionic surface treatment fits auto parts).
_PLATFORM_CHAINS = {"仿生", "碳纤维"}
_LOCALITY_VALUE = {"local": 1.0, "weihai": 0.75, "shandong": 0.5, "other": 0.25}


@dataclass
class Factor:
    name: str
    value: float | None
    note: str

    @property
    def label(self) -> str:
        return LABELS[self.name]


def _industry(need: Need | None, outcome: Outcome) -> Factor:
    a, b = (need.industry_chain if need else None), outcome.industry_chain
    if not a or not b:
        return Factor("industry_chain", None, "产业链信息缺失")
    if a == b:
        return Factor("industry_chain", 1.0, f"同属{a}产业链")
    if a in _PLATFORM_CHAINS or b in _PLATFORM_CHAINS:
        return Factor("industry_chain", 0.5, f"{b if b in _PLATFORM_CHAINS else a}为共性技术，可服务{a if b in _PLATFORM_CHAINS else b}产业链")
    return Factor("industry_chain", 0.0, f"需求属{a}，成果属{b}")


def _maturity(outcome: Outcome) -> Factor:
    if not outcome.stage:
        return Factor("maturity", None, "成果成熟度未填写")
    value = _MATURITY_VALUE.get(outcome.stage, 0.0)
    trl = f"（TRL {outcome.trl}）" if outcome.trl else ""
    if value >= 0.9:
        return Factor("maturity", value, f"成果已{outcome.stage}{trl}，企业可直接承接")
    return Factor("maturity", value, f"成果处于{outcome.stage}阶段{trl}，企业承接需二次开发")


def _modes(need: Need | None, outcome: Outcome) -> Factor:
    a = set(need.cooperation_modes or []) if need else set()
    b = set(outcome.cooperation_modes or [])
    if not a or not b:
        return Factor("cooperation_mode", None, "合作方式未填写")
    both = [m for m in outcome.cooperation_modes if m in a]
    if both:
        return Factor("cooperation_mode", 1.0, f"双方均接受{'、'.join(both)}")
    return Factor("cooperation_mode", 0.0, f"需求希望{'、'.join(sorted(a))}，成果提供{'、'.join(sorted(b))}")


def _money(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "面议"
    if low == high or high is None:
        return f"{low:g}万元"
    if low is None:
        return f"{high:g}万元以内"
    return f"{low:g}–{high:g}万元"


def _budget(need: Need | None, outcome: Outcome) -> Factor:
    has_budget = need is not None and (need.budget_min is not None or need.budget_max is not None)
    has_price = outcome.price_min is not None or outcome.price_max is not None
    if not has_budget or not has_price:
        negotiable = (need is not None and need.budget_negotiable) or outcome.price_negotiable
        return Factor("budget", None, "价格面议，需洽谈" if negotiable else "预算或报价未填写")
    budget_high = need.budget_max if need.budget_max is not None else need.budget_min
    price_low = outcome.price_min if outcome.price_min is not None else outcome.price_max
    text = f"预算{_money(need.budget_min, need.budget_max)}，报价{_money(outcome.price_min, outcome.price_max)}"
    if price_low <= budget_high:
        return Factor("budget", 1.0, text + "，在预算内")
    return Factor("budget", max(0.0, min(1.0, budget_high / price_low)), text + "，报价高于预算")


def _locality(outcome: Outcome) -> Factor:
    tier = outcome.institution.locality if outcome.institution else None
    if not tier:
        return Factor("locality", None, "单位所在地未填写")
    return Factor("locality", _LOCALITY_VALUE[tier], f"{outcome.institution.name}为{LOCALITY_TIERS[tier]}单位")


def _track(signed: int, name: str) -> Factor:
    if signed <= 0:
        return Factor("track_record", 0.0, f"{name}暂无已签约项目")
    return Factor("track_record", min(1.0, signed / 3), f"{name}已签约{signed}个产学研项目")


def factors(need: Need | None, outcome: Outcome, signed_by_institution: int) -> list[Factor]:
    """All structured factors for a need (None for free text) and an outcome."""
    return [
        _industry(need, outcome),
        _maturity(outcome),
        _modes(need, outcome),
        _budget(need, outcome),
        _locality(outcome),
        _track(signed_by_institution, outcome.institution.name if outcome.institution else "该单位"),
    ]


@dataclass
class Scored:
    score: float
    text_score: float
    confidence: float
    weak: bool
    factors: list[Factor]
    evidence: Any = None  # the retrieval's per-channel scores (matcher.retrieval.Candidate)

    def breakdown(self, weights: Weights) -> list[dict]:
        out = []
        for f in self.factors:
            w = getattr(weights, f.name)
            out.append(dict(name=f.name, label=f.label, value=f.value, weight=w,
                            contribution=round(w * (f.value or 0.0), 4), note=f.note))
        return out


def combine(text_score: float, fs: list[Factor], weights: Weights = DEFAULT_WEIGHTS,
            relational: bool = True) -> Scored:
    """Combine text relevance and factors into one score with a confidence.

    For free-text queries (``relational`` False) the need-side factors are
    not applicable and do not count against confidence.
    """
    applicable = [f for f in fs if relational or f.name in ("maturity", "locality", "track_record")]
    bonus = sum(getattr(weights, f.name) * f.value for f in applicable if f.value is not None)
    present = sum(1 for f in applicable if f.value is not None)
    confidence = present / len(applicable) if applicable else 1.0
    score = weights.text * text_score + bonus
    return Scored(round(score, 6), round(text_score, 6), round(confidence, 3),
                  text_score < weights.weak_below, applicable)
