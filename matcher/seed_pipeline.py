"""Load the illustrative pipeline (示例数据): pairings with dated history, signed projects, targets.

The seed's ``pipeline/*.json`` files name records by their owner and title, as
a broker would; they go through the same stage machine as the API (with the
history's own timestamps), so a seeded pairing is indistinguishable from one
moved by hand. Loading twice creates nothing new: a pairing is keyed by its
need and outcome, a direct project by its parties, title and date, a target by
its region and years. One file loads in one transaction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .context import MatcherContext
from .imports.values import normalize_title
from .models import Enterprise, Institution, Need, Outcome, Pairing, Project, Target
from .pairings import record_history
from .regions import region_of
from .seed import SEED_DIR


@dataclass
class PipelineReport:
    """What loading the pipeline seed did."""

    filename: str
    created: dict[str, int] = field(default_factory=lambda: {"pairings": 0, "projects": 0, "targets": 0})
    unchanged: dict[str, int] = field(default_factory=lambda: {"pairings": 0, "projects": 0, "targets": 0})
    skipped: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        c, u = self.created, self.unchanged
        text = (f"示例对接新增{c['pairings']}条、签约项目（直接录入）新增{c['projects']}个、目标新增{c['targets']}个；"
                f"已存在未改动：对接{u['pairings']}、项目{u['projects']}、目标{u['targets']}")
        return text + (f"；跳过{len(self.skipped)}条（{'；'.join(self.skipped)}）" if self.skipped else "")


def pipeline_files(seed_dir: Path = SEED_DIR) -> list[Path]:
    """The pipeline seed files, in name order."""
    return sorted((seed_dir / "pipeline").glob("*.json"))


def _need(session: Session, enterprise: str, title: str) -> Need | None:
    return session.scalar(select(Need).join(Enterprise).where(
        Enterprise.name == enterprise, Need.title_key == normalize_title(title), Need.deleted_at.is_(None)))


def _outcome(session: Session, institution: str, title: str) -> Outcome | None:
    return session.scalar(select(Outcome).join(Institution).where(
        Institution.name == institution, Outcome.title_key == normalize_title(title), Outcome.deleted_at.is_(None)))


def _pairing(session: Session, item: dict, report: PipelineReport) -> None:
    need, outcome = _need(session, item["enterprise"], item["need"]), _outcome(session, item["institution"], item["outcome"])
    if need is None or outcome is None:
        report.skipped.append(f"找不到需求「{item['need']}」或成果「{item['outcome']}」")
        return
    if session.scalar(select(Pairing.id).where(Pairing.need_id == need.id, Pairing.outcome_id == outcome.id)):
        report.unchanged["pairings"] += 1
        return
    steps = [{**step, "at": datetime.fromisoformat(step["at"])} for step in item["history"]]
    record_history(session, need.id, outcome.id, item["broker"], steps, note=item.get("note"))
    report.created["pairings"] += 1


def _project(session: Session, item: dict, report: PipelineReport) -> None:
    firm = session.scalar(select(Enterprise).where(Enterprise.name == item["enterprise"]))
    inst = session.scalar(select(Institution).where(Institution.name == item["institution"]))
    if firm is None or inst is None:
        report.skipped.append(f"找不到项目「{item['title']}」的企业或单位")
        return
    signed = date.fromisoformat(item["signed_date"])
    exists = session.scalar(select(Project.id).where(
        Project.enterprise_id == firm.id, Project.institution_id == inst.id, Project.title == item["title"],
        Project.signed_date == signed, Project.pairing_id.is_(None)))
    if exists:
        report.unchanged["projects"] += 1
        return
    session.add(Project(title=item["title"], enterprise_id=firm.id, institution_id=inst.id,
                        contract_type=item["contract_type"], signed_date=signed, region=region_of(firm.region, session),
                        industry_chain=firm.industry_chain, broker=item.get("broker")))
    report.created["projects"] += 1


def _target(session: Session, item: dict, report: PipelineReport) -> None:
    exists = session.scalar(select(Target.id).where(Target.region == item["region"],
                                                    Target.year_start == item["year_start"],
                                                    Target.year_end == item["year_end"]))
    if exists:
        # A bureau may have changed a seeded target since; its number is theirs now.
        report.unchanged["targets"] += 1
        return
    session.add(Target(region=item["region"], year_start=item["year_start"], year_end=item["year_end"],
                       count=item["count"]))
    report.created["targets"] += 1


def load_pipeline(ctx: MatcherContext, seed_dir: Path = SEED_DIR) -> list[PipelineReport]:
    """Load every pipeline seed file (after the needs and outcomes it refers to); idempotent, all or nothing per file."""
    reports = []
    for path in pipeline_files(seed_dir):
        doc = json.loads(path.read_text(encoding="utf-8"))
        report = PipelineReport(path.name)
        with ctx.sessions() as session:
            try:
                for item in doc.get("targets", []):
                    _target(session, item, report)
                for item in doc.get("pairings", []):
                    _pairing(session, item, report)
                for item in doc.get("projects", []):
                    _project(session, item, report)
                session.commit()
            except Exception:
                session.rollback()
                raise
        reports.append(report)
    return reports
