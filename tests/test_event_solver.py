"""Matchmaking-event scheduler: optimality against brute force, every rule, infeasibility reasons."""
from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from matcher.events.synthetic import synthetic_event
from matcher.events.solver import (
    Candidate,
    EventSpec,
    Meeting,
    firm_key,
    greedy,
    institution_key,
    solve,
    validate_spec,
)

try:
    import ortools  # noqa: F401
    BACKENDS = ["cp-sat", "milp"]
except ImportError:
    BACKENDS = ["milp"]


def violations(spec: EventSpec, meetings: list[Meeting], *, floors: bool = True) -> list[str]:
    """Every rule an event schedule must satisfy; returns what is broken (empty when valid)."""
    bad = []
    known = {(c.need_id, c.outcome_id): c for c in spec.candidates}
    pairs = Counter((m.need_id, m.outcome_id) for m in meetings)
    bad += [f"pair {p} meets {n} times" for p, n in pairs.items() if n > 1]
    for m in meetings:
        c = known.get((m.need_id, m.outcome_id))
        if c is None or (c.firm_id, c.institution_id, c.score) != (m.firm_id, m.institution_id, m.score):
            bad.append(f"{m} is not a candidate")
        if m.slot not in spec.slots:
            bad.append(f"{m} in unknown slot")
        if (m.need_id, m.outcome_id) in spec.excluded_pairs:
            bad.append(f"{m} is excluded")
        away = spec.unavailable.get(m.slot, frozenset())
        if firm_key(m.firm_id) in away or institution_key(m.institution_id) in away:
            bad.append(f"{m} has an unavailable party")
    for key, n in Counter((m.firm_id, m.slot) for m in meetings).items():
        if n > 1:
            bad.append(f"firm double-booked {key}")
    for key, n in Counter((m.institution_id, m.slot) for m in meetings).items():
        if n > 1:
            bad.append(f"institution double-booked {key}")
    firm_n = Counter(m.firm_id for m in meetings)
    bad += [f"firm {f} over cap" for f, n in firm_n.items() if n > spec.max_meetings_per_firm]
    inst_n = Counter(m.institution_id for m in meetings)
    bad += [f"inst {i} over cap" for i, n in inst_n.items() if n > spec.max_meetings_per_institution]
    slot_n = Counter(m.slot for m in meetings)
    bad += [f"slot {s} over cap" for s, n in slot_n.items() if n > spec.max_meetings_per_slot]
    if floors and spec.min_meetings_per_firm:
        for f in {c.firm_id for c in spec.candidates}:
            if firm_n[f] < spec.min_meetings_per_firm:
                bad.append(f"firm {f} below floor")
    return bad


def check_schedule(spec: EventSpec, meetings: list[Meeting]) -> None:
    """Assert that ``meetings`` obeys every rule of ``spec`` and is sorted as promised."""
    assert violations(spec, meetings) == []
    order = {s: i for i, s in enumerate(spec.slots)}
    keys = [(order[m.slot], -m.score) for m in meetings]
    assert keys == sorted(keys)


def brute_force(spec: EventSpec) -> float | None:
    """Best total score over every assignment of each candidate to a slot or to nothing."""
    best = None
    choices = [None, *spec.slots]
    for combo in itertools.product(choices, repeat=len(spec.candidates)):
        meetings = [
            Meeting(s, c.need_id, c.outcome_id, c.firm_id, c.institution_id, c.score)
            for c, s in zip(spec.candidates, combo) if s is not None
        ]
        if not violations(spec, meetings):
            total = round(sum(m.score for m in meetings), 4)
            best = total if best is None else max(best, total)
    return best


def random_small(seed: int) -> EventSpec:
    rng = random.Random(seed)
    slots = ["09:00", "09:30", "10:00"][: rng.choice([2, 3])]
    cands = []
    for i in range(6):
        firm, inst = rng.randint(1, 3), rng.randint(1, 3)
        cands.append(Candidate(100 + i, 200 + i, firm, inst, round(rng.uniform(0, 1), 3)))
    excluded = frozenset((c.need_id, c.outcome_id) for c in cands if rng.random() < 0.15)
    unavailable = {}
    if rng.random() < 0.5:
        unavailable[rng.choice(slots)] = frozenset({firm_key(rng.randint(1, 3)), institution_key(rng.randint(1, 3))})
    return EventSpec(
        slots=slots,
        candidates=cands,
        max_meetings_per_firm=rng.randint(1, 3),
        max_meetings_per_institution=rng.randint(1, 3),
        max_meetings_per_slot=rng.randint(1, 3),
        excluded_pairs=excluded,
        unavailable=unavailable,
        min_meetings_per_firm=rng.choice([0, 0, 0, 1]),
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(20))
def test_matches_brute_force(seed, backend):
    spec = random_small(seed)
    expected = brute_force(spec)
    got = solve(spec, time_limit_s=5, backend=backend)
    assert got.solver == backend
    if expected is None:
        assert not got.feasible and got.infeasible_reasons and got.meetings == []
        return
    assert got.feasible and got.optimal
    assert got.objective == pytest.approx(expected, abs=1e-4)
    check_schedule(spec, got.meetings)
    base = greedy(spec)
    assert violations(spec, base, floors=False) == []
    assert got.greedy_objective == pytest.approx(sum(m.score for m in base), abs=1e-4)
    if spec.min_meetings_per_firm == 0:
        assert got.objective >= got.greedy_objective - 1e-9


def test_greedy_is_beaten():
    # Greedy grabs firm 1 × institution 1 (score 10) and thereby blocks both 9-point meetings.
    spec = EventSpec(
        slots=["09:00"],
        candidates=[
            Candidate(1, 11, 1, 1, 10.0),
            Candidate(2, 12, 1, 2, 9.0),
            Candidate(3, 13, 2, 1, 9.0),
        ],
        max_meetings_per_firm=2, max_meetings_per_institution=2, max_meetings_per_slot=2,
    )
    got = solve(spec)
    assert got.feasible and got.optimal
    assert got.greedy_objective == 10.0
    assert got.objective == 18.0
    assert got.gap_vs_greedy == pytest.approx(8 / 18, abs=1e-6)
    check_schedule(spec, got.meetings)


def test_exclusions_and_unavailability_respected():
    spec = EventSpec(
        slots=["09:00", "09:30"],
        candidates=[
            Candidate(1, 11, 1, 1, 0.99),  # best pair, but excluded
            Candidate(2, 12, 2, 2, 0.9),
            Candidate(3, 13, 3, 3, 0.8),
        ],
        max_meetings_per_firm=2, max_meetings_per_institution=2, max_meetings_per_slot=3,
        excluded_pairs=frozenset({(1, 11)}),
        unavailable={"09:00": frozenset({firm_key(2)}), "09:30": frozenset({institution_key(3)})},
    )
    got = solve(spec)
    check_schedule(spec, got.meetings)
    placed = {(m.need_id, m.slot) for m in got.meetings}
    assert placed == {(2, "09:30"), (3, "09:00")}
    assert got.objective == pytest.approx(1.7)
    assert all(m.need_id != 1 for m in greedy(spec))


def test_empty_schedule_is_feasible():
    spec = EventSpec(slots=["09:00"], candidates=[], max_meetings_per_firm=1,
                     max_meetings_per_institution=1, max_meetings_per_slot=1)
    got = solve(spec)
    assert got.feasible and got.meetings == [] and got.objective == 0 and got.gap_vs_greedy == 0


def test_global_floor_too_high_explains_what_to_relax():
    cands = [Candidate(f, 100 + f, f, f, 0.5) for f in range(1, 13)]
    cands += [Candidate(50 + f, 200 + f, f, 20 + f, 0.4) for f in range(1, 13)]
    spec = EventSpec(
        slots=["09:00", "09:30", "10:00", "10:30"], candidates=cands,
        max_meetings_per_firm=3, max_meetings_per_institution=3, max_meetings_per_slot=5,
        min_meetings_per_firm=2,
    )
    got = solve(spec)
    assert not got.feasible and got.meetings == []
    text = "\n".join(got.infeasible_reasons)
    assert "共 12 家企业各需至少 2 场，共需 24 场" in text
    assert "4 个时段 × 每时段 5 桌 = 20 场" in text
    assert "把每家企业至少场次降到 1" in text and "增加到至少 6 张" in text


def test_firm_floor_above_its_available_slots_names_the_firm():
    spec = EventSpec(
        slots=["09:00", "09:30", "10:00"],
        candidates=[
            Candidate(1, 11, 1, 1, 0.5), Candidate(2, 12, 1, 2, 0.5),
            Candidate(3, 13, 3, 1, 0.5), Candidate(4, 14, 3, 2, 0.5),
        ],
        max_meetings_per_firm=3, max_meetings_per_institution=3, max_meetings_per_slot=5,
        unavailable={"09:00": frozenset({firm_key(3)}), "09:30": frozenset({firm_key(3)})},
        min_meetings_per_firm=2,
    )
    got = solve(spec)
    assert not got.feasible
    assert len(got.infeasible_reasons) == 1
    reason = got.infeasible_reasons[0]
    assert "企业 3 至少需要 2 场会谈" in reason and "可用时段只有 1 个" in reason
    assert "每家企业至少会谈场次" in reason
    # Lifting the unavailability makes the same floor achievable.
    lifted = EventSpec(**{**spec.__dict__, "unavailable": {}})
    ok = solve(lifted)
    assert ok.feasible and ok.optimal
    check_schedule(lifted, ok.meetings)


def test_floor_is_met_even_at_a_score_cost():
    # Unconstrained, firm 1 takes institution 1 (0.9) and firm 2 gets nothing; the floor forces 0.7 + 0.1.
    spec = EventSpec(
        slots=["09:00"],
        candidates=[Candidate(1, 11, 1, 1, 0.9), Candidate(2, 12, 1, 2, 0.7), Candidate(3, 13, 2, 1, 0.1)],
        max_meetings_per_firm=1, max_meetings_per_institution=1, max_meetings_per_slot=2,
    )
    assert solve(spec).objective == pytest.approx(0.9)
    floored = EventSpec(**{**spec.__dict__, "min_meetings_per_firm": 1})
    got = solve(floored)
    assert got.feasible and got.optimal and got.objective == pytest.approx(0.8)
    check_schedule(floored, got.meetings)
    assert got.gap_vs_greedy < 0  # greedy ignores the floor, so it can look better than a feasible plan


def test_infeasible_beyond_prechecks_gets_general_reason():
    # Counting passes (3 institutions × 1 ≥ 3 firms × 1) but firms 1 and 2 both depend on institution 1.
    spec = EventSpec(
        slots=["09:00", "09:30"],
        candidates=[Candidate(1, 11, 1, 1, 0.5), Candidate(2, 12, 2, 1, 0.5),
                    Candidate(3, 13, 3, 2, 0.5), Candidate(4, 14, 3, 3, 0.5)],
        max_meetings_per_firm=1, max_meetings_per_institution=1, max_meetings_per_slot=3,
        min_meetings_per_firm=1,
    )
    for backend in BACKENDS:
        got = solve(spec, backend=backend)
        assert not got.feasible and got.meetings == []
        assert len(got.infeasible_reasons) == 1
        assert "每家企业至少 1 场" in got.infeasible_reasons[0] and "请降低" in got.infeasible_reasons[0]


def test_validate_spec_messages():
    good = EventSpec(slots=["09:00"], candidates=[Candidate(1, 2, 3, 4, 0.5)],
                     max_meetings_per_firm=1, max_meetings_per_institution=1, max_meetings_per_slot=1)
    assert validate_spec(good) == []
    bad = EventSpec(
        slots=["09:00", "09:00"],
        candidates=[Candidate(1, 2, 3, 4, -0.5), Candidate(1, 2, 3, 4, 0.5), Candidate(1, 9, 7, 4, 0.1)],
        max_meetings_per_firm=0, max_meetings_per_institution=1, max_meetings_per_slot=0,
        unavailable={"11:00": frozenset({("firm", 3)}), "09:00": frozenset({("team", 1)})},
        min_meetings_per_firm=-1,
    )
    text = "\n".join(validate_spec(bad))
    for expected in ("时段「09:00」重复", "「每家企业最多会谈场次」必须是不小于 1", "「每个时段桌数」",
                     "匹配分为负数", "重复出现", "需求 1 同时属于企业 3 和企业 7", "「11:00」不在时段列表中",
                     "格式不对", "不能为负数"):
        assert expected in text, expected
    assert "未设置任何时段" in validate_spec(EventSpec([], [], 1, 1, 1))[0]
    got = solve(bad)
    assert not got.feasible and got.infeasible_reasons == validate_spec(bad)


def test_large_instance_is_correct():
    spec = synthetic_event()
    got = solve(spec, time_limit_s=10)
    assert got.feasible
    check_schedule(spec, got.meetings)
    assert got.objective >= got.greedy_objective - 1e-9
    assert got.objective == pytest.approx(sum(m.score for m in got.meetings), abs=1e-4)
