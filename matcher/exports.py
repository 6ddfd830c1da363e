"""The bureau's Excel exports: the progress report and the pairing list (Chinese headers)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy.orm import Session

from .clock import LOCAL_TZ, as_utc
from .errors import DomainError
from .funnel import funnel_report
from .models import Pairing, Project
from .pairings import check_stage_filter
from .progress import counted_projects, progress_report
from .records import list_records
from .spreadsheets import Sheet, workbook_bytes
from .vocab import DECLINE_REASONS, PAIRING_STAGES


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.1f}%"


def _local(value):
    return as_utc(value).astimezone(LOCAL_TZ).replace(tzinfo=None) if value is not None else None


def _summary(report: dict) -> Sheet:
    run, pipe = report["projection"]["run_rate"], report["projection"]["pipeline"]
    rows = [
        ("区域", report["region"], None),
        ("统计范围", "、".join(report["regions_counted"]), "市级区域汇总其下各区县"),
        ("期间", f"{report['period']['start']} 至 {report['period']['end']}", None),
        ("截至日期", report["as_of"], None),
        ("目标（项）", report["target"], report["note"]),
        ("已签约（项）", report["signed"], None),
        ("期间已过比例", _pct(report["elapsed_fraction"]), "按天计算，含截至当天"),
        ("按均匀进度应达（项）", report["expected_by_now"], "目标 × 期间已过比例"),
        ("落后于均匀进度（项）", report["behind_pace"], "正数为落后，负数为超前"),
        ("距目标差距（项）", report["gap_to_target"], None),
        ("期末预测：按签约速度（项）", run["projection"], run["formula"] or run["note"]),
        ("　方法", run["description"], run["note"]),
        ("　预测缺口（项）", run["projected_shortfall"], None),
        ("期末预测：按在途对接转化（项）", pipe["projection"], pipe["formula"]),
        ("　方法", pipe["description"], pipe["note"]),
        ("　预测缺口（项）", pipe["projected_shortfall"], None),
    ]
    return Sheet("汇总", ["指标", "数值", "说明"], rows)


def progress_workbook(report: dict, funnel: dict, projects: Sequence[Project]) -> bytes:
    """The monthly report as .xlsx: summary, pipeline conversion, breakdowns, monthly series, funnel, projects."""
    pipe = report["projection"]["pipeline"]
    b = report["breakdowns"]
    sheets = [
        _summary(report),
        Sheet("在途转化", ["阶段", "在途对接数", "历史样本（已结束）", "其中签约", "签约转化率", "预计签约（项）"],
              [(s["label"], s["open"], s["sample"], s["sample_signed"], _pct(s["conversion_to_signed"]),
                s["expected_signed"]) for s in pipe["stages"]]),
        Sheet("按产业链", ["产业链", "签约项目数"], [(r["name"], r["signed"]) for r in b["industry_chain"]]),
        Sheet("按单位", ["高校/院所", "签约项目数"], [(r["name"], r["signed"]) for r in b["institution"]]),
        Sheet("按经纪人", ["经纪人", "签约项目数", "在途对接数"],
              [(r["name"], r["signed"], r["open_pairings"]) for r in b["broker"]]),
        Sheet("按月累计", ["月份", "当月签约", "累计签约", "均匀进度累计应达"],
              [(r["month"], r["signed"], r["cumulative"], r["expected_cumulative"]) for r in b["month"]]),
        Sheet("对接漏斗", ["阶段", "到达数", "当前停留数", "到下一阶段转化率", "到签约转化率", "停留天数中位数",
                       "停留样本数", "在此阶段未成功"],
              [(s["label"], s["reached"], s["current"], _pct(s["conversion_to_next"]), _pct(s["conversion_to_signed"]),
                s["median_days"], s["median_days_sample"], s["declined_here"]) for s in funnel["stages"]]
              + [("未成功", funnel["declined"]["count"], funnel["declined"]["count"], None, None, None, None, None)]),
        Sheet("签约项目明细", ["项目编号", "项目名称", "企业", "高校/院所", "合同类型", "合同金额（万元）", "签约日期",
                         "区域", "产业链", "经纪人", "来源对接编号", "已落地"],
              [(p.id, p.title, p.enterprise.name, p.institution.name, p.contract_type, p.amount_wan, p.signed_date,
                p.region, p.industry_chain, p.broker, p.pairing_id, p.landed) for p in projects]),
    ]
    return workbook_bytes(sheets)


def progress_export(session: Session, region: str, start_year: int, end_year: int, as_of: date) -> tuple[bytes, str]:
    """(.xlsx bytes, Chinese file name) of the progress report for a region and year or period, as of a day."""
    report = progress_report(session, region, start_year, end_year, as_of)
    body = progress_workbook(report, funnel_report(session, region, start_year, end_year, as_of),
                             counted_projects(session, region, start_year, end_year, as_of))
    span = f"{start_year}" if start_year == end_year else f"{start_year}-{end_year}"
    return body, f"{region}{span}产学研签约进度_截至{as_of.isoformat()}.xlsx"


# An export is read in one piece; past this a caller should narrow the filters.
EXPORT_MAX_ROWS = 50_000
PAIRING_HEADERS = ["对接编号", "阶段", "企业", "技术需求", "高校/院所", "科技成果", "经纪人", "推荐时匹配分",
                   "推荐时间", "最近变更时间", "未成功原因", "未成功说明", "备注", "版本"]


def pairings_workbook(pairings: Sequence[Pairing]) -> bytes:
    """The pairing list as .xlsx, one row per pairing, times in China time."""
    rows = [(p.id, PAIRING_STAGES.get(p.stage, p.stage), p.need.enterprise.name, p.need.title, p.institution.name,
             p.outcome.title if p.outcome else None, p.broker, p.score, _local(p.created_at), _local(p.stage_changed_at),
             DECLINE_REASONS.get(p.decline_reason or "") or None, p.decline_note, p.note, p.version)
            for p in pairings]
    return workbook_bytes([Sheet("对接列表", PAIRING_HEADERS, rows)])


def pairing_list_export(session: Session, *, need_id: int | None = None, outcome_id: int | None = None,
                        stage: str | None = None, broker: str | None = None) -> bytes:
    """The pairings ``GET /pairings`` lists for the same filters, all of them, as .xlsx (413 past the row cap)."""
    check_stage_filter(stage)
    total, items = list_records(session, Pairing, offset=0, limit=EXPORT_MAX_ROWS, need_id=need_id,
                                outcome_id=outcome_id, stage=stage, broker=broker)
    if total > EXPORT_MAX_ROWS:
        raise DomainError("export_too_large", f"符合条件的对接有 {total} 条，超过导出上限 {EXPORT_MAX_ROWS} 条，请缩小筛选范围",
                          status=413, details={"total": total, "limit": EXPORT_MAX_ROWS})
    return pairings_workbook(items)
