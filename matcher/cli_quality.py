"""``matcher eval``: measure the ranking on a BEIR-style set."""
from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import typer
from rich.table import Table

from .cli import _progress, app, console
from .retrieval import METHODS
from .scoring import DEFAULT_WEIGHTS, Weights
from .settings import get_settings


def parse_overrides(pairs: list[str], base: Weights = DEFAULT_WEIGHTS) -> Weights:
    """``name=value`` pairs applied to the ranking weights (typed as the defaults are)."""
    known = {f.name: f.type for f in fields(Weights)}
    changes = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise typer.BadParameter(f"未知的权重「{pair}」；可用：{'、'.join(known)}")
        current = getattr(base, name)
        try:
            changes[name] = type(current)(value) if not isinstance(current, str) else value
        except ValueError as exc:
            raise typer.BadParameter(f"权重 {name} 的值「{value}」无法解析") from exc
    return replace(base, **changes)


def _table(report: dict) -> Table:
    k = report["k"]
    keys = [f"recall@{k}", f"mrr@{k}", f"ndcg@{k}"]
    table = Table(title=f"{report['dataset']} · {report['method']} · {report['queries']} 个查询 · "
                        f"{report['corpus']} 篇文档 · {report['queries_per_s']} 查询/秒")
    table.add_column("类别")
    table.add_column("查询数", justify="right")
    for key in keys:
        table.add_column(key.replace("recall", "Recall").replace("mrr", "MRR").replace("ndcg", "nDCG"), justify="right")
    table.add_row("全部", str(report["queries"]), *(f"{report['overall'][key]:.3f}" for key in keys))
    for cat, row in report["per_category"].items():
        table.add_row(cat, str(row["queries"]), *(f"{row[key]:.3f}" for key in keys))
    return table


@app.command("eval")
def evaluate(
    dataset: Path = typer.Option(..., "--dataset", exists=True, file_okay=False, help="BEIR 格式目录（queries/corpus/qrels.jsonl）"),
    method: str = typer.Option("full", help="bm25 | dense | hybrid | full"),
    k: int = typer.Option(10, min=1, max=1000, help="评估前 k 个结果"),
    relevant_at: int = typer.Option(1, "--relevant-at", min=1, help="相关性等级不低于该值才算命中（Recall、MRR）"),
    candidates: str = typer.Option("all", help="all：在全部文档中检索；judged：只对每个查询已标注的文档重排序"),
    split: str = typer.Option(None, help="只用 split 字段为该值的查询，如 dev"),
    limit: int = typer.Option(None, min=1, help="只评估前 N 个查询"),
    weight: list[str] = typer.Option([], "--set", help="临时修改排序权重，如 --set lexical=0.3（可重复）"),
    as_json: bool = typer.Option(False, "--json", help="以一个 JSON 对象输出"),
):
    """在评测集上运行真实的排序流程，输出 Recall@k、MRR@k、nDCG@k（总体与分类别）及每秒查询数。"""
    from .evaluation.dataset import DatasetError, load_eval_set
    from .evaluation.runner import EvalOptions, run_eval, weak_threshold

    if method not in METHODS:
        raise typer.BadParameter(f"method 只能是 {' | '.join(METHODS)}")
    if candidates not in ("all", "judged"):
        raise typer.BadParameter("candidates 只能是 all 或 judged")
    weights = parse_overrides(weight)
    try:
        eval_set = load_eval_set(dataset, split)
    except DatasetError as exc:
        console.print(f"[red]错误（invalid_dataset）：{exc}[/red]")
        raise typer.Exit(code=2) from exc
    options = EvalOptions(method=method, k=k, relevant_at=relevant_at, candidates=candidates, weights=weights,
                          limit=limit)
    with _progress("评测") as update:
        report = run_eval(eval_set, get_settings(), options,
                          on_progress=lambda label, done, total: update(done, total))
    report["weak_below_suggested"] = weak_threshold(report["relevant_scores"])
    if as_json:
        public = {key: v for key, v in report.items() if key not in ("relevant_scores", "top_scores")}
        typer.echo(json.dumps(public, ensure_ascii=False))
    else:
        console.print(_table(report))
