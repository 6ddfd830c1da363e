"""Apply an uploaded outcome or need list to the database, all or nothing.

Rows are validated first; a file with any bad row changes nothing unless the
caller asks for ``partial``. Records are keyed by (owner, normalised title), so
uploading the same list again reports every row unchanged. Vectors are encoded
before the one write transaction, so a failure or a kill mid-way leaves the
database and the indexes as they were.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from .context import MatcherContext
from .errors import DomainError
from .imports.reader import ImportFileError, ParsedTable, RawRow, ReadLimits, read_table
from .imports.values import (
    normalize_title,
    parse_date,
    parse_maturity,
    parse_modes,
    parse_money_range,
    parse_visibility,
    split_keywords,
)
from .models import Enterprise, Institution, Need, Outcome
from .records import _apply, log_change
from .schemas import NeedIn, OutcomeIn
from .validation import describe_errors
from .vocab import INDUSTRY_CHAINS, locality_tier

ProgressCallback = Callable[[int, int], None]

_KIND_CODES = {"高校": "university", "大学": "university", "学院": "university", "科研院所": "institute",
               "研究所": "institute", "研究院": "institute", "院所": "institute", "新型研发机构": "new_rd"}
_CHAIN_SYNONYMS = (
    ("新能源", "新能源新材料"), ("新材料", "新能源新材料"), ("材料", "新能源新材料"),
    ("医药", "医药及健康食品"), ("健康", "医药及健康食品"), ("食品", "医药及健康食品"), ("生物医", "医药及健康食品"),
    ("海洋", "海洋生物"), ("农", "现代农业"), ("汽车", "汽车机电"), ("机电", "汽车机电"), ("装备", "汽车机电"),
    ("电子", "电子信息"), ("信息", "电子信息"), ("软件", "电子信息"), ("船", "智能船舶"), ("碳纤维", "碳纤维"),
    ("仿生", "仿生"),
)
_MERGED_TITLE_MAX = 40


@dataclass
class ImportReport:
    """What an import did (or would have done), row by row where it matters."""

    kind: str
    filename: str
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[dict] = field(default_factory=list)
    applied: bool = False
    partial: bool = False
    created_owners: list[str] = field(default_factory=list)
    ignored_headers: list[str] = field(default_factory=list)
    encoded_texts: int = 0
    message: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _chain(value: str | None) -> str | None:
    if not value:
        return None
    if value in INDUSTRY_CHAINS:
        return value
    for marker, chain in _CHAIN_SYNONYMS:
        if marker in value:
            return chain
    raise ValueError(f"产业链「{value}」无法识别，可选：{'、'.join(INDUSTRY_CHAINS)}")


def _institution_kind(value: str | None, name: str) -> str | None:
    text = value or name
    for marker, code in _KIND_CODES.items():
        if marker in text:
            return code
    return None


def _split_merged(title: str, body: str) -> tuple[str, str]:
    """Separate "标题：简介……" written into one cell, as senders often do."""
    if body or len(title) <= _MERGED_TITLE_MAX:
        return title, body
    for sep in ("：", ":", "。", "，", ","):
        head, found, tail = title.partition(sep)
        if found and 4 <= len(head) <= _MERGED_TITLE_MAX and tail.strip():
            return head.strip(), title
    return title[:_MERGED_TITLE_MAX], title


def _row_fields(kind: str, values: dict[str, str]) -> tuple[str, dict, dict]:
    """Parse one row into (owner name, owner attributes, record fields); ValueError says why not."""
    title = values.get("title", "")
    body_key = "abstract" if kind == "outcomes" else "description"
    title, body = _split_merged(title, values.get(body_key, ""))
    if not title:
        raise ValueError("缺少" + ("成果名称" if kind == "outcomes" else "需求名称"))
    record: dict = {
        "title": title,
        body_key: body,
        "keywords": split_keywords(values.get("keywords", "")),
        "field": values.get("field") or None,
        "industry_chain": _chain(values.get("industry_chain")),
        "cooperation_modes": parse_modes(values["cooperation_modes"]) if values.get("cooperation_modes") else [],
        "contact": values.get("contact") or None,
        "phone": values.get("phone") or None,
        "external_id": values.get("external_id") or None,
    }
    if kind == "outcomes":
        owner = values.get("institution", "")
        if not owner:
            raise ValueError("缺少单位名称")
        if values.get("maturity"):
            record["trl"], record["stage"] = parse_maturity(values["maturity"])
        record["team"] = values.get("team") or None
        record["ip_type"] = values.get("ip_type") or None
        record["ip_number"] = values.get("ip_number") or None
        if values.get("asking_price"):
            record["price_min"], record["price_max"], record["price_negotiable"] = parse_money_range(values["asking_price"])
        owner_attrs = {"kind": _institution_kind(values.get("institution_kind"), owner),
                       "location": values.get("institution_location") or None}
    else:
        owner = values.get("enterprise", "")
        if not owner:
            raise ValueError("缺少企业名称")
        if values.get("budget"):
            record["budget_min"], record["budget_max"], record["budget_negotiable"] = parse_money_range(values["budget"])
        if values.get("deadline"):
            record["deadline"] = parse_date(values["deadline"])
        if values.get("visibility"):
            record["visibility"] = parse_visibility(values["visibility"])
        owner_attrs = {"region": values.get("region") or None, "size": values.get("enterprise_size") or None,
                       "credit_code": values.get("credit_code") or None,
                       "industry_chain": record["industry_chain"]}
    if len(owner) > 200:
        raise ValueError("单位名称超过200字")
    return owner, owner_attrs, record


def _validated(kind: str, record: dict) -> dict:
    schema = OutcomeIn if kind == "outcomes" else NeedIn
    owner_key = "institution_id" if kind == "outcomes" else "enterprise_id"
    try:
        model = schema(**{owner_key: 1, **record})  # the owner is resolved later; any valid id passes
    except ValidationError as exc:
        raise ValueError("；".join(describe_errors(exc))) from exc
    data = model.model_dump(exclude={owner_key})
    return {k: v for k, v in data.items() if k in record or k in ("keywords", "cooperation_modes")}


def _outside_scope(kind: str, owner: str, attrs: dict, scope: Enterprise | Institution | None) -> str | None:
    """Why a row may not be imported by a user who speaks for ``scope`` (None when it may)."""
    if scope is None or normalize_title(owner) == normalize_title(scope.name):
        return None
    if kind == "needs" and attrs.get("credit_code") and attrs["credit_code"] == scope.credit_code:
        return None
    what = "成果" if kind == "outcomes" else "需求"
    return f"只能导入本单位（{scope.name}）的{what}，本行单位为「{owner}」"


def _validate_rows(table: ParsedTable, scope: Enterprise | Institution | None = None
                   ) -> tuple[list[tuple[RawRow, str, dict, dict]], list[dict]]:
    good, rejected, seen = [], [], {}
    for row in table.rows:
        if row.problems:
            rejected.append({"row": row.row_number, "reason": "；".join(row.problems)})
            continue
        try:
            owner, owner_attrs, record = _row_fields(table.kind, row.values)
            record = _validated(table.kind, record)
        except ValueError as exc:
            rejected.append({"row": row.row_number, "reason": str(exc)})
            continue
        if (reason := _outside_scope(table.kind, owner, owner_attrs, scope)) is not None:
            rejected.append({"row": row.row_number, "reason": reason})
            continue
        key = (normalize_title(owner), normalize_title(record["title"]))
        if key in seen:
            rejected.append({"row": row.row_number, "reason": f"与第{seen[key]}行重复（同一单位的同名记录）"})
            continue
        seen[key] = row.row_number
        good.append((row, owner, owner_attrs, record))
    return good, rejected


def _owner(session: Session, kind: str, name: str, attrs: dict, cache: dict, created: list[str], scope=None):
    if scope is not None:
        return scope  # a party user's rows all belong to their own party (checked in _validate_rows)
    if name in cache:
        return cache[name]
    model = Institution if kind == "outcomes" else Enterprise
    obj = None
    if kind == "needs" and attrs["credit_code"]:
        # The credit code identifies a firm even when its name is written differently.
        obj = session.scalar(select(Enterprise).where(Enterprise.credit_code == attrs["credit_code"]))
    if obj is None:
        obj = session.scalar(select(model).where(model.name == name))
    if obj is None:
        if kind == "outcomes":
            obj = Institution(name=name, kind=attrs["kind"], location=attrs["location"],
                              locality=locality_tier(attrs["location"], name))
        else:
            code = attrs["credit_code"]
            if code and session.scalar(select(Enterprise.id).where(Enterprise.credit_code == code)) is not None:
                code = None  # the code belongs to another name; keep the row, drop the clash
            obj = Enterprise(name=name, region=attrs["region"], size=attrs["size"], credit_code=code,
                             industry_chain=attrs["industry_chain"])
        # Not flushed yet: nothing is written before every vector is encoded.
        session.add(obj)
        created.append(name)
    else:
        for key, value in attrs.items():
            if value and not getattr(obj, key, None) and key != "credit_code":
                setattr(obj, key, value)
        if isinstance(obj, Institution) and not obj.locality:
            obj.locality = locality_tier(obj.location, obj.name)
    cache[name] = obj
    return obj


# Rows whose stored records one query reads: each binds its owner and its title (or its own id), well under
# SQLite's limit on bound parameters (999 in old builds).
_LOOKUP_BATCH = 400


class _StoredRecords:
    """The live stored records an import's rows refer to, read a few hundred rows to a query, not one a row.

    A row refers to the record of its owner with the sender's own id (``external_id``) if it gives one and
    such a record exists, else to the one with its normalised title (unique per owner).
    """

    def __init__(self, session: Session, model, owner_fk: str, rows: list[tuple[int, dict]]):
        owner = getattr(model, owner_fk)
        live = model.deleted_at.is_(None)
        self._by_external: dict[tuple[int, str], object] = {}
        self._by_title: dict[tuple[int, str], object] = {}
        for start in range(0, len(rows), _LOOKUP_BATCH):
            chunk = rows[start:start + _LOOKUP_BATCH]
            owners = {owner_id for owner_id, _ in chunk}
            titles = {normalize_title(fields["title"]) for _, fields in chunk}
            externals = {fields["external_id"] for _, fields in chunk if fields.get("external_id")}
            # Owners × titles is a superset of the pairs asked; only the asked pairs are ever looked up.
            for record in session.scalars(select(model).where(live, owner.in_(owners), model.title_key.in_(titles))):
                self._by_title[(getattr(record, owner_fk), record.title_key)] = record
            if externals:
                stmt = (select(model).where(live, owner.in_(owners), model.external_id.in_(externals))
                        .order_by(model.id))
                for record in session.scalars(stmt):
                    # The oldest record with that id wins, should a sender have reused one.
                    self._by_external.setdefault((getattr(record, owner_fk), record.external_id), record)

    def find(self, owner_id: int, fields: dict):
        """The stored record the row ``fields`` of owner ``owner_id`` refers to, or None (a new record)."""
        if fields.get("external_id"):
            found = self._by_external.get((owner_id, fields["external_id"]))
            if found is not None:
                return found
        return self._by_title.get((owner_id, normalize_title(fields["title"])))


def import_table(ctx: MatcherContext, session: Session, table: ParsedTable, filename: str, *,
                 partial: bool = False, dry_run: bool = False,
                 on_progress: ProgressCallback | None = None,
                 scope: Enterprise | Institution | None = None) -> ImportReport:
    """Validate and apply a parsed table; see the module docstring for the rules.

    ``scope``: the one enterprise or institution the uploader speaks for; rows
    naming another party are rejected like any other bad row.
    """
    report = ImportReport(kind=table.kind, filename=filename, total_rows=len(table.rows), partial=partial,
                          ignored_headers=table.ignored_headers)
    good, report.rejected = _validate_rows(table, scope)
    if report.rejected and not partial:
        report.message = f"有{len(report.rejected)}行无法导入，整个文件未导入；修正后重新上传，或使用 partial=true 只导入有效行"
        return report
    model = Outcome if table.kind == "outcomes" else Need
    owner_fk = "institution_id" if table.kind == "outcomes" else "enterprise_id"
    changed: list = []
    updated_ids: set[int] = set()  # stored records a row changed (a sender may name one twice)
    owners: dict = {}
    before = ctx.encoder.encoded_count
    try:
        with session.no_autoflush:
            resolved = [(_owner(session, table.kind, name, attrs, owners, report.created_owners, scope), fields)
                        for _row, name, attrs, fields in good]
            stored = _StoredRecords(session, model, owner_fk,
                                    [(owner.id, fields) for owner, fields in resolved if owner.id is not None])
            for owner, fields in resolved:
                existing = None if owner.id is None else stored.find(owner.id, fields)
                if existing is None:
                    record = model()
                    record.keywords, record.cooperation_modes = [], []
                    _apply(record, fields)
                    setattr(record, "institution" if table.kind == "outcomes" else "enterprise", owner)
                    session.add(record)
                    report.created += 1
                    changed.append(record)
                else:
                    old = existing.content_hash
                    _apply(existing, fields)
                    if existing.content_hash == old:
                        report.unchanged += 1
                        if existing.id not in updated_ids:
                            # Every value set equals the stored one: forgetting them spares the flush and
                            # the audit hook a look at thousands of unchanged records (most of a re-import).
                            session.expire(existing)
                    else:
                        report.updated += 1
                        changed.append(existing)
                        updated_ids.add(existing.id)
            if dry_run:
                session.rollback()
                report.message = "预检完成，未写入"
                return report
            ctx.indexes.prepare(changed, on_progress=on_progress)
        session.flush()
        for record in changed:
            log_change(session, record)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    report.applied = True
    report.encoded_texts = ctx.encoder.encoded_count - before
    ctx.indexes.sync()
    report.message = (f"导入完成：新增{report.created}条，更新{report.updated}条，未变{report.unchanged}条"
                      + (f"，跳过{len(report.rejected)}行" if report.rejected else ""))
    return report


def import_file(ctx: MatcherContext, session: Session, data: bytes, filename: str, kind: str, *,
                partial: bool = False, dry_run: bool = False,
                on_progress: ProgressCallback | None = None,
                scope: Enterprise | Institution | None = None) -> ImportReport:
    """Read an uploaded file (xlsx/csv, detected by content) and import it (``scope``: see :func:`import_table`)."""
    limits = ReadLimits(max_bytes=ctx.settings.max_upload_bytes, max_rows=ctx.settings.max_import_rows,
                        max_cell_chars=ctx.settings.max_text_chars)
    try:
        table = read_table(data, filename, kind, limits)
    except ImportFileError as exc:
        raise DomainError(exc.code, exc.message, status=exc.status) from exc
    if not table.rows:
        raise DomainError("no_rows", "文件中没有数据行", status=400)
    return import_table(ctx, session, table, filename, partial=partial, dry_run=dry_run, on_progress=on_progress,
                        scope=scope)
