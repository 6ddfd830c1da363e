"""Printable agendas of a stored event: an overview sheet and one sheet per firm and institution."""
from __future__ import annotations

import re
from datetime import datetime

from ..clock import LOCAL_TZ
from ..errors import Invalid, NotFound
from ..models import MatchEvent, MatchEventMeeting
from ..spreadsheets import Sheet, workbook_bytes

FIRM, INSTITUTION = "enterprise", "institution"
_PARTY = re.compile(r"^(enterprise|institution):(\d{1,10})$")
OVERVIEW_HEADERS = ["时段", "开始时间", "结束时间", "企业", "技术需求", "高校/院所", "科技成果", "匹配分", "匹配理由"]
PARTY_HEADERS = ["时段", "开始时间", "结束时间", "对接方", "技术需求", "科技成果", "匹配分", "匹配理由"]
FREE = "（空闲）"


def parse_party(value: str) -> tuple[str, int]:
    """``enterprise:12`` or ``institution:5`` → (kind, id); anything else is a coded 422."""
    match = _PARTY.match(value.strip())
    if not match:
        raise Invalid("invalid_party", "party 格式须为 enterprise:企业编号 或 institution:单位编号，例如 enterprise:12")
    return match.group(1), int(match.group(2))


def _time(value: str | None) -> str | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(LOCAL_TZ)
    return moment.strftime("%Y-%m-%d %H:%M")


def _slot_rows(event: MatchEvent) -> list[tuple[str, str | None, str | None]]:
    return [(s["label"], _time(s.get("starts_at")), _time(s.get("ends_at"))) for s in event.slots]


def _party_sheet(event: MatchEvent, kind: str, party_id: int, name: str) -> Sheet:
    mine = {m.slot_index: m for m in event.meetings
            if (m.enterprise_id if kind == FIRM else m.institution_id) == party_id}
    rows = []
    for i, (label, start, end) in enumerate(_slot_rows(event)):
        m: MatchEventMeeting | None = mine.get(i)
        if m is None:
            rows.append((label, start, end, FREE, None, None, None, None))
            continue
        other = m.institution.name if kind == FIRM else m.enterprise.name
        rows.append((label, start, end, other, m.need.title, m.outcome.title, round(m.score, 4), m.summary))
    return Sheet(name, PARTY_HEADERS, rows)


def _parties(event: MatchEvent) -> list[tuple[str, int, str]]:
    firms = {m.enterprise_id: m.enterprise.name for m in event.meetings}
    insts = {m.institution_id: m.institution.name for m in event.meetings}
    return ([(FIRM, i, n) for i, n in sorted(firms.items(), key=lambda kv: kv[1])]
            + [(INSTITUTION, i, n) for i, n in sorted(insts.items(), key=lambda kv: kv[1])])


def agenda_workbook(event: MatchEvent, party: str | None = None) -> tuple[bytes, str]:
    """(.xlsx bytes, file name): every party's agenda after an overview, or only ``party``'s.

    A party is a firm or an institution with at least one meeting; every slot
    is listed on its sheet, free ones marked 空闲.
    """
    parties = _parties(event)
    if party is not None:
        kind, party_id = parse_party(party)
        found = [p for p in parties if p[0] == kind and p[1] == party_id]
        if not found:
            raise NotFound("party_not_in_event", f"{'企业' if kind == FIRM else '高校/院所'} {party_id} 在本场对接会中没有安排会谈")
        _, _, name = found[0]
        return workbook_bytes([_party_sheet(event, kind, party_id, name)]), f"{event.title}_{name}_日程.xlsx"
    slots = _slot_rows(event)
    overview = [(slots[m.slot_index][0], slots[m.slot_index][1], slots[m.slot_index][2], m.enterprise.name,
                 m.need.title, m.institution.name, m.outcome.title, round(m.score, 4), m.summary)
                for m in sorted(event.meetings, key=lambda m: (m.slot_index, m.enterprise.name))]
    sheets = [Sheet("总日程", OVERVIEW_HEADERS, overview)]
    sheets += [_party_sheet(event, kind, pid, name) for kind, pid, name in parties]
    return workbook_bytes(sheets), f"{event.title}_日程.xlsx"
