"""Benchmark the event scheduler on a seeded 30 firms × 30 institutions × 6 slots instance.

Run: python bench/bench_events.py   (prints figures, asserts nothing about time)
"""
from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher.events.solver import solve  # noqa: E402
from matcher.events.synthetic import synthetic_event  # noqa: E402

RUNS = 5


def main() -> None:
    spec = synthetic_event()
    results = [solve(spec, time_limit_s=10.0) for _ in range(RUNS)]
    secs = [r.seconds for r in results]
    last = results[-1]
    print(f"实例: 30 家企业 × 30 家机构 × 6 个时段, 候选对接 {len(spec.candidates)} 个, 运行 {RUNS} 次")
    print(f"求解器: {last.solver}")
    print(f"CPU 数: {os.cpu_count()}")
    print(f"耗时中位数 (秒): {statistics.median(secs):.4f}")
    print(f"耗时最大值 (秒): {max(secs):.4f}")
    print(f"目标值 (总匹配分): {last.objective}")
    print(f"贪心基线目标值: {last.greedy_objective}")
    print(f"相对贪心提升 (%): {last.gap_vs_greedy * 100:.2f}")
    print(f"已证明最优: {'是' if all(r.optimal for r in results) else '否'}")
    print(f"安排会谈场次: {len(last.meetings)}")


if __name__ == "__main__":
    main()
