"""``matcher user``: create and list accounts, reset a password, issue an API key."""
from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.table import Table

from .access import ROLE_LABELS, ROLES, Viewer
from .cli import _fail, app, console, database_sessions
from .errors import DomainError
from .validation import describe_errors

user_app = typer.Typer(help="账号管理：新建用户、重置密码、签发 API 密钥。", no_args_is_help=True)
app.add_typer(user_app, name="user")
# Changes made here are audited as the command line, not as any user.
_CLI = Viewer(None, "cli", "admin", "命令行")


def _sessions():
    """Database sessions only: account commands need neither the model nor the indexes."""
    from .audit import set_actor

    maker = database_sessions()

    def session():
        s = maker()
        set_actor(s, _CLI, "命令行")
        return s

    return session


def _password(given: str | None) -> str:
    if given is not None:
        return given
    return typer.prompt("密码", hide_input=True, confirmation_prompt="再次输入密码")


def _invalid(exc: ValidationError) -> None:
    console.print(f"[red]错误（invalid_input）：{'；'.join(describe_errors(exc))}[/red]")
    raise typer.Exit(code=2)


@user_app.command("create")
def create(role: str = typer.Option(..., help="admin | broker | enterprise | institution"),
           username: str = typer.Option(..., help="登录名（3–50 个字母、数字或 _ . @ -）"),
           password: str = typer.Option(None, help="不填则交互输入（推荐：命令行参数会留在 shell 历史中）"),
           display_name: str = typer.Option(None, help="显示的姓名，默认同登录名"),
           enterprise_id: int = typer.Option(None, help="企业用户绑定的企业编号"),
           institution_id: int = typer.Option(None, help="高校/院所用户绑定的单位编号")):
    """新建用户。"""
    from .accounts.users import UserIn, create_user

    if role not in ROLES:
        console.print(f"[red]角色须为 {' | '.join(ROLES)} 之一[/red]")
        raise typer.Exit(code=2)
    try:
        data = UserIn(username=username, password=_password(password), role=role, display_name=display_name,
                      enterprise_id=enterprise_id, institution_id=institution_id)
    except ValidationError as exc:
        _invalid(exc)
    with _sessions()() as session:
        try:
            user = create_user(session, data)
        except DomainError as exc:
            _fail(exc)
        console.print(f"已创建用户 {user.username}（{ROLE_LABELS[user.role]}，编号 {user.id}）")


@user_app.command("list")
def list_users():
    """列出全部用户。"""
    from .accounts.users import list_users as run

    with _sessions()() as session:
        _, users = run(session, None, 0, 10_000)
        table = Table()
        for col in ("编号", "登录名", "姓名", "角色", "绑定", "状态"):
            table.add_column(col)
        for u in users:
            bound = (u.enterprise.name if u.enterprise else u.institution.name if u.institution else "")
            table.add_row(str(u.id), u.username, u.display_name, ROLE_LABELS.get(u.role, u.role), bound,
                          "启用" if u.active else "停用")
        console.print(table)


def _by_name(session, username: str):
    from .accounts.users import find_user

    user = find_user(session, username)
    if user is None:
        console.print(f"[red]用户「{username}」不存在[/red]")
        raise typer.Exit(code=2)
    return user


@user_app.command("password")
def set_password(username: str = typer.Argument(..., help="登录名"),
                 password: str = typer.Option(None, help="不填则交互输入")):
    """重置用户密码（该用户已登录的会话全部失效）。"""
    from .accounts.users import UserUpdate, update_user

    try:
        data = UserUpdate(password=_password(password))
    except ValidationError as exc:
        _invalid(exc)
    with _sessions()() as session:
        update_user(session, _by_name(session, username).id, data)
        console.print(f"已重置 {username} 的密码")


@user_app.command("api-key")
def api_key(username: str = typer.Argument(..., help="登录名"),
            name: str = typer.Option("脚本", help="密钥用途，便于日后识别和吊销")):
    """为用户签发 API 密钥（只显示这一次）。"""
    from .accounts.users import create_api_key

    with _sessions()() as session:
        _row, key = create_api_key(session, _by_name(session, username).id, name)
        console.print(f"API 密钥（只显示这一次，请妥善保存）：\n{key}")
