"""Schedule a matchmaking event (对接会) as an assignment problem.

Each candidate need–outcome pair may be placed in at most one time slot. A firm or an
institution sits at one table per slot at most; per-firm, per-institution and per-slot
(tables in the room) capacities hold over the event; excluded pairs never meet; parties
marked unavailable in a slot are not scheduled there; optionally every firm that appears
among the candidates gets a hard minimum of meetings. The total match score is maximised.

The model is solved with OR-Tools CP-SAT; if OR-Tools is not importable, with
``scipy.optimize.milp`` (HiGHS). Both see the same linear model built once here.

Unavailability representation: ``EventSpec.unavailable`` maps a slot label to a frozenset of
*party keys*, each a tuple ``("firm", firm_id)`` or ``("institution", institution_id)``. Use
:func:`firm_key` and :func:`institution_key` to build them.
"""
from __future__ import annotations

import math
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

FIRM = "firm"
INSTITUTION = "institution"
PartyKey = tuple[str, int]

# CP-SAT needs integer coefficients; 1e4 keeps 4 decimals, the precision objectives are reported at.
SCORE_SCALE = 10_000


def firm_key(firm_id: int) -> PartyKey:
    """Return the party key that marks firm ``firm_id`` in ``EventSpec.unavailable``."""
    return (FIRM, firm_id)


def institution_key(institution_id: int) -> PartyKey:
    """Return the party key that marks institution ``institution_id`` in ``EventSpec.unavailable``."""
    return (INSTITUTION, institution_id)


@dataclass(frozen=True)
class Candidate:
    """One possible meeting: a need–outcome pair, the parties behind it and its match score."""

    need_id: int
    outcome_id: int
    firm_id: int
    institution_id: int
    score: float


@dataclass(frozen=True)
class EventSpec:
    """Everything the scheduler needs; see the module docstring for ``unavailable`` keys."""

    slots: list[str]
    candidates: list[Candidate]
    max_meetings_per_firm: int
    max_meetings_per_institution: int
    max_meetings_per_slot: int
    excluded_pairs: frozenset[tuple[int, int]] = frozenset()
    unavailable: dict[str, frozenset[PartyKey]] = field(default_factory=dict)
    min_meetings_per_firm: int = 0


@dataclass
class Meeting:
    slot: str
    need_id: int
    outcome_id: int
    firm_id: int
    institution_id: int
    score: float


@dataclass
class Schedule:
    feasible: bool
    meetings: list[Meeting]
    objective: float
    optimal: bool
    greedy_objective: float
    gap_vs_greedy: float
    solver: str
    seconds: float
    infeasible_reasons: list[str]


# ---------------------------------------------------------------- validation


def validate_spec(spec: EventSpec) -> list[str]:
    """Return Chinese messages, one per problem in ``spec``; an empty list means it can be solved.

    Checks slots (present, non-empty, unique), capacities (>= 1), the floor (>= 0), scores
    (finite, non-negative), duplicate pairs, each need/outcome belonging to a single
    firm/institution, and that unavailability refers to known slots with well-formed keys.
    """
    errors: list[str] = []
    if not spec.slots:
        errors.append("未设置任何时段：请至少提供一个时段")
    for slot, n in Counter(spec.slots).items():
        if n > 1:
            errors.append(f"时段「{slot}」重复出现 {n} 次：每个时段只能列一次")
    if any(not str(s).strip() for s in spec.slots):
        errors.append("存在名称为空的时段")
    for label, value in (
        ("每家企业最多会谈场次", spec.max_meetings_per_firm),
        ("每家机构最多会谈场次", spec.max_meetings_per_institution),
        ("每个时段桌数", spec.max_meetings_per_slot),
    ):
        if not isinstance(value, int) or value < 1:
            errors.append(f"「{label}」必须是不小于 1 的整数（当前为 {value}）")
    if not isinstance(spec.min_meetings_per_firm, int) or spec.min_meetings_per_firm < 0:
        errors.append(f"「每家企业至少会谈场次」不能为负数（当前为 {spec.min_meetings_per_firm}）")

    need_owner: dict[int, int] = {}
    outcome_owner: dict[int, int] = {}
    seen_pairs: set[tuple[int, int]] = set()
    for c in spec.candidates:
        pair = f"需求 {c.need_id} × 成果 {c.outcome_id}"
        if not isinstance(c.score, (int, float)) or math.isnan(c.score) or math.isinf(c.score):
            errors.append(f"候选对接（{pair}）的匹配分不是有效数字（{c.score}）")
        elif c.score < 0:
            errors.append(f"候选对接（{pair}）的匹配分为负数（{c.score}）：分数不能为负")
        if (c.need_id, c.outcome_id) in seen_pairs:
            errors.append(f"候选对接（{pair}）重复出现：同一需求与成果只能列一次")
        seen_pairs.add((c.need_id, c.outcome_id))
        if need_owner.setdefault(c.need_id, c.firm_id) != c.firm_id:
            errors.append(f"需求 {c.need_id} 同时属于企业 {need_owner[c.need_id]} 和企业 {c.firm_id}")
        if outcome_owner.setdefault(c.outcome_id, c.institution_id) != c.institution_id:
            errors.append(
                f"成果 {c.outcome_id} 同时属于机构 {outcome_owner[c.outcome_id]} 和机构 {c.institution_id}"
            )

    known = set(spec.slots)
    for slot, parties in spec.unavailable.items():
        if slot not in known:
            errors.append(f"不可到场设置中的时段「{slot}」不在时段列表中")
        for key in parties:
            if not (isinstance(key, tuple) and len(key) == 2 and key[0] in (FIRM, INSTITUTION)):
                errors.append(
                    f"时段「{slot}」的不可到场对象 {key!r} 格式不对：应为 (\"firm\", 企业ID) 或 (\"institution\", 机构ID)"
                )
    return errors


# ---------------------------------------------------------------- shared helpers


def _usable(spec: EventSpec) -> list[tuple[int, int]]:
    """(candidate index, slot index) pairs that exclusions and unavailability allow."""
    out = []
    for ci, c in enumerate(spec.candidates):
        if (c.need_id, c.outcome_id) in spec.excluded_pairs:
            continue
        for si, slot in enumerate(spec.slots):
            away = spec.unavailable.get(slot, frozenset())
            if firm_key(c.firm_id) in away or institution_key(c.institution_id) in away:
                continue
            out.append((ci, si))
    return out


def _meeting(spec: EventSpec, ci: int, si: int) -> Meeting:
    c = spec.candidates[ci]
    return Meeting(spec.slots[si], c.need_id, c.outcome_id, c.firm_id, c.institution_id, c.score)


def _sorted(spec: EventSpec, meetings: list[Meeting]) -> list[Meeting]:
    order = {s: i for i, s in enumerate(spec.slots)}
    return sorted(meetings, key=lambda m: (order[m.slot], -m.score, m.need_id, m.outcome_id))


def _firms_with_floor(spec: EventSpec) -> list[int]:
    return sorted({c.firm_id for c in spec.candidates}) if spec.min_meetings_per_firm > 0 else []


def greedy(spec: EventSpec) -> list[Meeting]:
    """Baseline: take candidates by score (desc, input order on ties), put each in the first slot that fits.

    The result respects every rule except the per-firm floor, which greedy does not try to meet.
    Meetings come back sorted by slot order, then score descending.
    """
    usable = defaultdict(list)
    for ci, si in _usable(spec):
        usable[ci].append(si)
    firm_total: Counter = Counter()
    inst_total: Counter = Counter()
    slot_total: Counter = Counter()
    busy: set[tuple[str, int, int]] = set()
    placed: list[Meeting] = []
    order = sorted(range(len(spec.candidates)), key=lambda i: -spec.candidates[i].score)
    for ci in order:
        c = spec.candidates[ci]
        if firm_total[c.firm_id] >= spec.max_meetings_per_firm:
            continue
        if inst_total[c.institution_id] >= spec.max_meetings_per_institution:
            continue
        for si in usable[ci]:
            if slot_total[si] >= spec.max_meetings_per_slot:
                continue
            if (FIRM, c.firm_id, si) in busy or (INSTITUTION, c.institution_id, si) in busy:
                continue
            busy.add((FIRM, c.firm_id, si))
            busy.add((INSTITUTION, c.institution_id, si))
            firm_total[c.firm_id] += 1
            inst_total[c.institution_id] += 1
            slot_total[si] += 1
            placed.append(_meeting(spec, ci, si))
            break
    return _sorted(spec, placed)


# ---------------------------------------------------------------- infeasibility pre-checks


def _precheck(spec: EventSpec, usable: list[tuple[int, int]]) -> list[str]:
    """Sound, cheap proofs that the floor cannot be met, each phrased as what to relax."""
    floor = spec.min_meetings_per_firm
    firms = _firms_with_floor(spec)
    if not firms:
        return []
    reasons: list[str] = []
    n_slots = len(spec.slots)
    if floor > spec.max_meetings_per_firm:
        reasons.append(
            f"「每家企业至少会谈场次」为 {floor}，高于「每家企业最多会谈场次」{spec.max_meetings_per_firm}："
            f"请把至少场次降到 {spec.max_meetings_per_firm} 以下，或把最多场次提高到 {floor}"
        )
    if floor > n_slots:
        reasons.append(
            f"每家企业至少需要 {floor} 场会谈，但全场只有 {n_slots} 个时段（每家企业每个时段最多 1 场）："
            f"请把时段增加到至少 {floor} 个，或把「每家企业至少会谈场次」降到 {n_slots}"
        )

    need = len(firms) * floor
    table_cap = n_slots * spec.max_meetings_per_slot
    if need > table_cap:
        fix = [
            f"把时段增加到至少 {math.ceil(need / spec.max_meetings_per_slot)} 个",
            f"把每时段桌数增加到至少 {math.ceil(need / n_slots)} 张",
        ]
        lowered = table_cap // len(firms)
        fix.append(f"把每家企业至少场次降到 {lowered}" if lowered > 0 else "取消「每家企业至少会谈场次」")
        reasons.append(
            f"共 {len(firms)} 家企业各需至少 {floor} 场，共需 {need} 场；而 {n_slots} 个时段 × 每时段 "
            f"{spec.max_meetings_per_slot} 桌 = {table_cap} 场：请" + "，或".join(fix)
        )

    institutions = {c.institution_id for c in spec.candidates}
    per_inst = min(spec.max_meetings_per_institution, n_slots)
    inst_cap = len(institutions) * per_inst
    if need > inst_cap:
        reasons.append(
            f"共 {len(firms)} 家企业各需至少 {floor} 场，共需 {need} 场；而 {len(institutions)} 家机构每家最多 "
            f"{per_inst} 场，合计只能安排 {inst_cap} 场：请把「每家机构最多会谈场次」提高到至少 "
            f"{math.ceil(need / len(institutions))}（且时段数不少于此），或降低「每家企业至少会谈场次」"
        )

    if floor <= min(spec.max_meetings_per_firm, n_slots):
        slots_of: dict[int, set[int]] = defaultdict(set)
        pairs_of: dict[int, set[int]] = defaultdict(set)
        for ci, si in usable:
            f = spec.candidates[ci].firm_id
            slots_of[f].add(si)
            pairs_of[f].add(ci)
        for f in firms:
            n_free, n_pairs = len(slots_of[f]), len(pairs_of[f])
            if n_free < floor:
                reasons.append(
                    f"企业 {f} 至少需要 {floor} 场会谈，但其可用时段只有 {n_free} 个（企业本身及其对口机构都能到场的时段）："
                    f"请放宽「每家企业至少会谈场次」（降到 {n_free}）或增加该企业的可用时段"
                )
            elif n_pairs < floor:
                reasons.append(
                    f"企业 {f} 至少需要 {floor} 场会谈，但只有 {n_pairs} 个可安排的候选对接（其余被排除或对方无法到场）："
                    f"请放宽「每家企业至少会谈场次」（降到 {n_pairs}）或为该企业增加候选成果"
                )
    return reasons


def _general_reason(spec: EventSpec) -> str:
    return (
        "在现有硬性约束下无法为每家企业安排足够的会谈。相关约束："
        f"每家企业至少 {spec.min_meetings_per_firm} 场、每家企业最多 {spec.max_meetings_per_firm} 场、"
        f"每家机构最多 {spec.max_meetings_per_institution} 场、{len(spec.slots)} 个时段 × 每时段 "
        f"{spec.max_meetings_per_slot} 桌、{len(spec.excluded_pairs)} 组排除对接、各方不可到场时段。"
        "请降低「每家企业至少会谈场次」，或增加时段、桌数、机构最多场次，或减少排除与不可到场设置"
    )


# ---------------------------------------------------------------- the linear model


@dataclass
class _Row:
    vars: list[int]
    lb: int
    ub: int


def _rows(spec: EventSpec, usable: list[tuple[int, int]]) -> list[_Row]:
    """All constraints as 0/1 sums over the usable (candidate, slot) variables."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for v, (ci, si) in enumerate(usable):
        c = spec.candidates[ci]
        # Pairs are keyed by (need, outcome), not by candidate, so a duplicated pair still meets once.
        groups[("pair", c.need_id, c.outcome_id)].append(v)
        groups[("firm_slot", c.firm_id, si)].append(v)
        groups[("inst_slot", c.institution_id, si)].append(v)
        groups[("firm", c.firm_id)].append(v)
        groups[("inst", c.institution_id)].append(v)
        groups[("slot", si)].append(v)
    floor_firms = set(_firms_with_floor(spec))
    caps = {
        "pair": 1, "firm_slot": 1, "inst_slot": 1,
        "firm": spec.max_meetings_per_firm,
        "inst": spec.max_meetings_per_institution,
        "slot": spec.max_meetings_per_slot,
    }
    rows = []
    for key, vs in groups.items():
        lb = spec.min_meetings_per_firm if key[0] == "firm" and key[1] in floor_firms else 0
        if len(vs) > caps[key[0]] or lb > 0:
            rows.append(_Row(vs, lb, caps[key[0]]))
    return rows


def _solve_cpsat(spec, usable, rows, weights, hint, time_limit_s):
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    x = [model.NewBoolVar(f"x{v}") for v in range(len(usable))]
    for r in rows:
        model.AddLinearConstraint(sum(x[v] for v in r.vars), r.lb, r.ub)
    model.Maximize(sum(w * x[v] for v, w in enumerate(weights)))
    for v in range(len(usable)):
        model.AddHint(x[v], v in hint)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    # Fixed worker count keeps runs comparable across machines with different core counts.
    solver.parameters.num_workers = max(1, min(8, os.cpu_count() or 1))
    status = solver.Solve(model)
    if status == cp_model.INFEASIBLE:
        return "infeasible", None
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        chosen = [v for v in range(len(usable)) if solver.BooleanValue(x[v])]
        return ("optimal" if status == cp_model.OPTIMAL else "feasible"), chosen
    return "unknown", None


def _solve_milp(spec, usable, rows, weights, hint, time_limit_s):
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import lil_matrix

    n = len(usable)
    if n == 0:
        return ("infeasible", None) if any(r.lb > 0 for r in rows) else ("optimal", [])
    a = lil_matrix((max(1, len(rows)), n))
    lb = np.zeros(max(1, len(rows)))
    ub = np.full(max(1, len(rows)), np.inf)
    for i, r in enumerate(rows):
        for v in r.vars:
            a[i, v] = 1
        lb[i], ub[i] = r.lb, r.ub
    res = milp(
        c=-np.asarray(weights, dtype=float),
        constraints=LinearConstraint(a.tocsr(), lb, ub),
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": float(time_limit_s)},
    )
    if res.status == 2:
        return "infeasible", None
    if res.x is None:
        return "unknown", None
    chosen = [v for v in range(n) if res.x[v] > 0.5]
    return ("optimal" if res.status == 0 else "feasible"), chosen


def _backend(requested: str | None) -> str:
    if requested in ("cp-sat", "milp"):
        return requested
    try:
        import ortools.sat.python.cp_model  # noqa: F401
        return "cp-sat"
    except ImportError:
        return "milp"


def solve(spec: EventSpec, time_limit_s: float = 10.0, *, backend: str | None = None) -> Schedule:
    """Schedule the event, maximising total score under every rule in the module docstring.

    Promises: a feasible schedule satisfies every rule; ``optimal`` is True only when the
    solver proved it; ``greedy_objective`` is :func:`greedy` on the same input (greedy ignores the
    floor, so ``gap_vs_greedy`` may be negative when a floor costs score). Invalid input
    or a provably unmeetable floor gives ``feasible=False`` with Chinese reasons and no solve.
    If the time limit passes with no solution and greedy meets the floor, the greedy schedule
    is returned (``optimal=False``). ``backend`` forces "cp-sat" or "milp"; default picks CP-SAT
    when OR-Tools is importable.
    """
    started = time.perf_counter()
    name = _backend(backend)

    def result(feasible, meetings, optimal, reasons, base=0.0):
        objective = round(sum(m.score for m in meetings), 4)
        return Schedule(
            feasible=feasible,
            meetings=_sorted(spec, meetings),
            objective=objective,
            optimal=optimal,
            greedy_objective=base,
            gap_vs_greedy=round((objective - base) / objective, 6) if objective > 0 else 0.0,
            solver=name,
            seconds=round(time.perf_counter() - started, 4),
            infeasible_reasons=reasons,
        )

    errors = validate_spec(spec)
    if errors:
        return result(False, [], False, errors)

    base_meetings = greedy(spec)
    base = round(sum(m.score for m in base_meetings), 4)
    usable = _usable(spec)
    reasons = _precheck(spec, usable)
    if reasons:
        return result(False, [], False, reasons, base)

    rows = _rows(spec, usable)
    weights = [round(spec.candidates[ci].score * SCORE_SCALE) for ci, _ in usable]
    placed = {(m.need_id, m.outcome_id, m.slot) for m in base_meetings}
    hint = {
        v for v, (ci, si) in enumerate(usable)
        if (spec.candidates[ci].need_id, spec.candidates[ci].outcome_id, spec.slots[si]) in placed
    }
    run = _solve_cpsat if name == "cp-sat" else _solve_milp
    status, chosen = run(spec, usable, rows, weights, hint, time_limit_s)

    if status == "infeasible":
        return result(False, [], False, [_general_reason(spec)], base)
    if status == "unknown":
        got = Counter(m.firm_id for m in base_meetings)
        if all(got[f] >= spec.min_meetings_per_firm for f in _firms_with_floor(spec)):
            return result(True, base_meetings, False, [], base)
        reason = (
            f"在 {time_limit_s} 秒时限内未找到满足「每家企业至少会谈场次」（{spec.min_meetings_per_firm} 场）的方案："
            "请延长求解时限，或降低该下限"
        )
        return result(False, [], False, [reason], base)
    meetings = [_meeting(spec, *usable[v]) for v in chosen]
    return result(True, meetings, status == "optimal", [], base)
