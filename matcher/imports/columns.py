"""Canonical import columns for each kind of list, and matching of the headers senders really use."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "Column",
    "OUTCOME_COLUMNS",
    "NEED_COLUMNS",
    "KINDS",
    "columns_for",
    "kind_label",
    "normalize_header",
    "match_header",
]


@dataclass(frozen=True)
class Column:
    """One canonical column.

    ``required`` means both that the column must be present in a file and that
    each row must fill it (the template marks it with "*").
    """

    key: str
    header: str
    aliases: tuple[str, ...]
    required: bool
    help: str


# Beyond the agreed aliases: without these, "联系人电话" would fall back to the longer
# contained name "联系人" and land in the contact column.
_PHONE_ALIASES = ("电话", "手机", "联系方式", "联系人电话", "联系人手机")

OUTCOME_COLUMNS: tuple[Column, ...] = (
    Column("institution", "单位名称",
           ("所属单位", "完成单位", "高校名称", "依托单位", "成果单位", "单位", "高校/院所"),
           True, "成果所属的高校、科研院所或新型研发机构全称，如“山东大学（威海）”。"),
    Column("institution_kind", "单位类型", ("机构类型",),
           False, "填写 高校 / 科研院所 / 新型研发机构 之一。"),
    Column("institution_location", "单位所在地", ("所在地", "所在地区", "地区"),
           False, "单位所在的省市区，如“山东省威海市”“威海市文登区”。"),
    Column("external_id", "成果编号", ("编号", "项目编号"),
           False, "贵单位内部的成果编号，可不填；填写后重复导入时据此识别同一成果。"),
    Column("title", "成果名称", ("项目名称", "名称", "成果标题", "技术名称"),
           True, "成果的正式名称，一行一项成果。"),
    # Not required: some senders merge the description into the title cell.
    Column("abstract", "成果简介",
           ("内容简介", "简介", "成果介绍", "技术简介", "摘要", "项目简介", "成果内容"),
           False, "强烈建议填写：技术原理、主要指标、应用场景等，匹配主要依据此列，建议不超过5000字。"),
    Column("keywords", "关键词", ("关键字",),
           False, "多个关键词用顿号、逗号、分号或空格分隔。"),
    Column("field", "所属领域", ("技术领域", "领域", "行业领域", "应用领域"),
           False, "成果所属技术领域，如“新材料”“生物医药”。"),
    Column("industry_chain", "产业链", ("所属产业链",),
           False, "如 汽车机电、新能源新材料、医药及健康食品、电子信息、海洋生物、现代农业、智能船舶、仿生、碳纤维。"),
    Column("team", "团队/专家", ("团队负责人", "负责人", "专家", "成果完成人", "研发团队"),
           False, "成果负责人或主要完成人。"),
    Column("maturity", "成熟度", ("技术成熟度", "成果阶段", "所处阶段", "技术阶段", "成熟度阶段"),
           False, "填写 实验室 / 小试 / 中试 / 产业化，或 TRL1～TRL9，或 1～9。"),
    Column("ip_type", "知识产权类型", ("知识产权", "专利类型"),
           False, "如 发明专利、实用新型、软件著作权、技术秘密。"),
    Column("ip_number", "专利号", ("知识产权编号", "授权号", "专利/软著号"),
           False, "专利号或软件著作权登记号，多个用分号分隔。"),
    Column("cooperation_modes", "合作方式", ("转化方式", "拟合作方式", "合作模式"),
           False, "技术开发、技术转让、技术许可、作价投资入股、技术咨询、技术服务、共建研发平台，可多选，用顿号分隔。"),
    Column("asking_price", "意向价格（万元）",
           ("价格", "转让价格", "参考价格（万元）", "意向价格", "价格（万元）"),
           False, "单位万元：填数字如“50”、范围如“50-100”，或“面议”。"),
    Column("contact", "联系人", (), False, "对接联系人姓名。"),
    Column("phone", "联系电话", _PHONE_ALIASES, False, "手机或座机号码。"),
)

NEED_COLUMNS: tuple[Column, ...] = (
    Column("enterprise", "企业名称", ("需求单位", "公司名称", "单位名称", "企业"),
           True, "提出需求的企业全称，与营业执照一致。"),
    Column("credit_code", "统一社会信用代码", ("信用代码",),
           False, "18位统一社会信用代码，可不填；填写后可准确识别同名企业。"),
    Column("region", "所在区域", ("所在地区", "镇街", "区域", "所属区域", "所属镇街"),
           False, "企业所在区县或镇街，如“文登区龙山街道”“环翠区”。"),
    Column("enterprise_size", "企业规模", ("规模",),
           False, "填写 大型 / 中型 / 小型 / 微型 之一。"),
    Column("external_id", "需求编号", ("编号",),
           False, "需求的内部编号，可不填；填写后重复导入时据此识别同一需求。"),
    Column("title", "需求名称", ("需求标题", "技术需求名称", "项目名称", "名称", "技术需求"),
           True, "用一句话概括要解决的技术问题，一行一项需求。"),
    # Not required: some senders merge the description into the title cell.
    Column("description", "需求内容",
           ("需求描述", "需求简介", "内容简介", "简介", "具体需求", "需求详情", "需求说明"),
           False, "强烈建议填写：现状、要解决的问题、期望指标，匹配主要依据此列，建议不超过5000字。"),
    Column("keywords", "关键词", ("关键字",),
           False, "多个关键词用顿号、逗号、分号或空格分隔。"),
    Column("field", "所属领域", ("技术领域", "领域", "所属行业", "行业"),
           False, "需求所属技术领域或行业，如“智能制造”“海洋生物”。"),
    Column("industry_chain", "产业链", ("所属产业链",),
           False, "如 汽车机电、新能源新材料、医药及健康食品、电子信息、海洋生物、现代农业、智能船舶、仿生、碳纤维。"),
    Column("budget", "预算（万元）",
           ("拟投入资金（万元）", "投入金额", "预算", "拟投入金额（万元）"),
           False, "单位万元：填数字如“50”、范围如“50-100”，或“面议”。"),
    Column("cooperation_modes", "合作方式", ("期望合作方式", "拟合作方式"),
           False, "技术开发、技术转让、技术许可、作价投资入股、技术咨询、技术服务、共建研发平台，可多选，用顿号分隔。"),
    Column("deadline", "截止日期", ("期望完成时间", "完成时限"),
           False, "如“2026-12-31”或“2026年12月”（按月末计）。"),
    Column("visibility", "公开方式", ("是否公开",),
           False, "填写 公开 或 仅经纪人可见（填“否”视为仅经纪人可见）。"),
    Column("contact", "联系人", (), False, "对接联系人姓名。"),
    Column("phone", "联系电话", _PHONE_ALIASES, False, "手机或座机号码。"),
)

KINDS: dict[str, tuple[Column, ...]] = {"outcomes": OUTCOME_COLUMNS, "needs": NEED_COLUMNS}

_KIND_LABELS = {"outcomes": "科技成果", "needs": "企业技术需求"}


def columns_for(kind: str) -> tuple[Column, ...]:
    """Return the canonical columns of ``kind`` ("outcomes" or "needs"); ValueError for any other kind."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"未知的导入类型「{kind}」，应为 outcomes 或 needs") from None


def kind_label(kind: str) -> str:
    """Return the Chinese name of ``kind`` (科技成果 / 企业技术需求); ValueError for an unknown kind."""
    columns_for(kind)
    return _KIND_LABELS[kind]


_WHITESPACE = re.compile(r"\s+")
_MARKS = re.compile(r"^\*+|\*+$")
_TRAILING_REQUIRED = re.compile(r"\((?:必填|必填项|必选|选填|可选|非必填)\)$")


def normalize_header(text: object) -> str:
    """Return the comparison form of a header cell.

    NFKC (so full-width brackets equal ASCII ones), all whitespace removed,
    "*" required markers and a trailing "(必填)"/"(选填)" dropped, case-folded.
    """
    if text is None:
        return ""
    s = unicodedata.normalize("NFKC", str(text))
    s = _WHITESPACE.sub("", s)
    s = s.replace("\u200b", "").replace("\ufeff", "")
    s = _MARKS.sub("", s)
    s = _TRAILING_REQUIRED.sub("", s)
    s = _MARKS.sub("", s)
    return s.casefold()


def _names(column: Column) -> tuple[str, ...]:
    return (column.header, *column.aliases)


# kind -> (exact name -> key, [(name, key)] longest first for the containment fallback)
_LOOKUP: dict[str, tuple[dict[str, str], list[tuple[str, str]]]] = {}


def _lookup(kind: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    if kind not in _LOOKUP:
        exact: dict[str, str] = {}
        ordered: list[tuple[str, str]] = []
        for column in columns_for(kind):
            for name in _names(column):
                norm = normalize_header(name)
                exact.setdefault(norm, column.key)
                ordered.append((norm, column.key))
        # Stable sort keeps column order among equally long names, so ties are deterministic.
        ordered.sort(key=lambda item: -len(item[0]))
        _LOOKUP[kind] = (exact, ordered)
    return _LOOKUP[kind]


def match_header(header: object, kind: str, *, fuzzy: bool = True) -> str | None:
    """Return the canonical key a header cell stands for, or None if unrecognised.

    An exact match on a template header or alias wins; otherwise, when ``fuzzy``,
    a header that contains a known name (e.g. "成果简介（300字以内）") maps to the
    longest such name.
    """
    norm = normalize_header(header)
    if not norm:
        return None
    exact, ordered = _lookup(kind)
    if norm in exact:
        return exact[norm]
    if not fuzzy:
        return None
    for name, key in ordered:
        if name in norm:
            return key
    return None
