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
        declared = str(known[name])  # e.g. "float", "str", "int | None" (annotations are strings here)
        if value.strip().lower() == "none" and "None" in declared:
            changes[name] = None  # an optional limit switched off, e.g. lexical_terms=none
            continue
        kind = {"int": int, "float": float}.get(declared.split("|")[0].strip(), str)
        try:
            changes[name] = kind(value)
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
    backend: str = typer.Option(None, help="向量推理后端 auto | torch-bf16 | onnx | onnx-int8 | torch（默认取 MATCHER_EMBEDDING_BACKEND）"),
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
    settings = get_settings()
    if backend is not None:
        from embeddings.onnx_backend import UnknownBackendError, check_backend

        try:
            settings = settings.model_copy(update={"embedding_backend": check_backend(backend, settings.data_dir)})
        except UnknownBackendError as exc:
            raise typer.BadParameter(str(exc)) from exc
    try:
        eval_set = load_eval_set(dataset, split)
    except DatasetError as exc:
        console.print(f"[red]错误（invalid_dataset）：{exc}[/red]")
        raise typer.Exit(code=2) from exc
    options = EvalOptions(method=method, k=k, relevant_at=relevant_at, candidates=candidates, weights=weights,
                          limit=limit)
    with _progress("评测") as update:
        report = run_eval(eval_set, settings, options,
                          on_progress=lambda label, done, total: update(done, total))
    report["weak_below_suggested"] = weak_threshold(report["relevant_scores"])
    if as_json:
        public = {key: v for key, v in report.items() if key not in ("relevant_scores", "top_scores")}
        typer.echo(json.dumps(public, ensure_ascii=False))
    else:
        console.print(_table(report))


@app.command("tune")
def tune(
    gate: list[Path] = typer.Option([], "--gate", exists=True, file_okay=False,
                                    help="用于把关的评测集目录（可重复），如 ../shared/eval/csl_goal"),
    gate_docs: int = typer.Option(1000, min=10, help="把关时每个评测集抽取的文档数"),
    gate_queries: int = typer.Option(100, min=1, help="把关时每个评测集使用的查询数"),
    tolerance: float = typer.Option(0.0, min=0.0, help="允许 nDCG@10 下降的幅度（默认不允许下降）"),
    epochs: int = typer.Option(1, min=1, max=20),
    activate: bool = typer.Option(False, help="把关通过后启用微调模型"),
    export: Path = typer.Option(None, help="只把训练样本导出为 JSONL 文件，不训练"),
):
    """用经纪人已签约/已拒绝的对接微调向量模型；在评测集上不变差才可启用。"""
    import time

    from embeddings.active_model import activate_model
    from embeddings.encoder import Encoder, resolve_model_dir

    from .context import build_context
    from .learning import fine_tune, training_pairs, tune_examples

    settings = get_settings()
    ctx = build_context(settings, open_indexes=False)
    with ctx.sessions() as session:
        pairs = training_pairs(session)
    ctx.engine.dispose()
    if export:
        export.write_text("".join(json.dumps(p.as_dict(), ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
        console.print(f"已导出 {len(pairs)} 条训练样本到 {export}")
        return
    examples = tune_examples(pairs)
    console.print(f"训练样本：{len(pairs)} 条对接（签约 {examples.positives}，可作难负例的拒绝 {examples.hard_negatives}）")
    if not examples.positives:
        console.print("[red]错误（no_training_pairs）：还没有已签约的对接，无法微调。[/red]")
        raise typer.Exit(code=2)
    if examples.positives < 50:
        console.print("[yellow]样本很少：这次微调只演示机制，效果需更多签约数据才能体现。[/yellow]")
    base_dir = resolve_model_dir(settings.embedding_model, settings.data_dir)
    base = ctx.encoder.encoder
    out_dir = Path(settings.data_dir) / "models" / f"tuned-{time.strftime('%Y%m%d-%H%M%S')}"
    with console.status("微调中……"):
        fine_tune(base_dir, examples, out_dir, epochs=epochs,
                  query_prefix=base.profile.query_prefix, passage_prefix=base.profile.passage_prefix)
    console.print(f"微调模型已保存：{out_dir}")
    # The same backend as the base model, so the gate compares weights, not precisions.
    tuned = Encoder(str(out_dir), settings.data_dir, backend=base.backend)
    verdict = _gate(gate, gate_docs, gate_queries, tolerance, base, tuned, settings)
    if verdict is None:
        console.print("未指定 --gate 评测集：模型未经把关，不会启用。")
        return
    if not verdict:
        console.print("[red]把关未通过：微调模型在评测集上变差，未启用。[/red]")
        raise typer.Exit(code=3)
    if activate:
        activate_model(settings.data_dir, out_dir)
        console.print("已启用微调模型；下次启动服务时按新模型重建索引。")


def _gate(dirs: list[Path], docs: int, queries: int, tolerance: float, base, tuned, settings) -> bool | None:
    """Dense nDCG@10 of the base and tuned models on subsamples of the gate sets; True if none got worse."""
    from .evaluation.dataset import load_eval_set, subsample
    from .evaluation.runner import EvalOptions, run_eval

    if not dirs:
        return None
    passed = True
    for directory in dirs:
        small = subsample(load_eval_set(directory, "dev"), docs, queries)
        figures = {}
        for label, encoder in (("原模型", base), ("微调后", tuned)):
            with _progress(f"{small.name} · {label}") as update:
                report = run_eval(small, settings, EvalOptions(method="dense"), encoder=encoder,
                                  on_progress=lambda _l, d, t: update(d, t))
            figures[label] = report["overall"]["ndcg@10"]
        ok = figures["微调后"] >= figures["原模型"] - tolerance
        passed &= ok
        console.print(f"{small.name}：nDCG@10 原模型 {figures['原模型']:.4f} → 微调后 {figures['微调后']:.4f} "
                      f"{'通过' if ok else '变差'}")
    return passed
