"""Cleaning of cell text and parsing of the free-form values senders type into lists.

Every parser raises ValueError with a Chinese message that can be shown to the
person who filled the sheet.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
import unicodedata

from ..vocab import COOPERATION_MODES, stage_for_trl
from ..vocab import STAGES as STAGE_TRL_RANGE

__all__ = [
    "clean_text",
    "clean_prose",
    "parse_money_range",
    "parse_maturity",
    "parse_modes",
    "parse_date",
    "split_keywords",
    "parse_visibility",
    "normalize_title",
    "STAGES",
    "STAGE_TRL_RANGE",
    "COOPERATION_MODES",
]

# --------------------------------------------------------------------------- text


def _script_chars() -> str:
    # Superscripts/subscripts carry meaning in technical text ("10⁻⁶", "m³");
    # NFKC would flatten "10⁶" into "106", so these are kept as they are.
    return "".join(
        chr(cp)
        for cp in range(0xA0, 0x10000)
        if unicodedata.decomposition(chr(cp)).startswith(("<super>", "<sub>"))
    )


_SCRIPT_SPLIT = re.compile("([" + re.escape(_script_chars()) + "]+)")
# Chinese prose keeps its own punctuation: "山东大学（威海）" is the official name,
# and "，" reads wrong as ",". Only values that are parsed get the full NFKC.
_CJK_PUNCT = "，；：！？（）～［］｛｝"
_PROSE_SPLIT = re.compile("([" + re.escape(_script_chars() + _CJK_PUNCT) + "]+)")
_LINE_BREAKS = str.maketrans({"\r": "\n", "\x0b": "\n", "\x0c": "\n", "\x85": "\n",
                              "\u2028": "\n", "\u2029": "\n", "\t": " "})
# Control characters (except \n) and invisible format characters: zero-width
# spaces/joiners, BOM, soft hyphen, bidi marks. They break matching and dedupe.
_INVISIBLE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb]"
)
_SPACES = re.compile(r"[ \t]+")


def _nfkc(s: str, keep: re.Pattern = _SCRIPT_SPLIT) -> str:
    if s.isascii():
        return s
    parts = keep.split(s)
    if len(parts) == 1:
        return unicodedata.normalize("NFKC", s)
    # Odd positions are the captured super/subscript runs.
    return "".join(
        unicodedata.normalize("NFC" if i % 2 else "NFKC", part) for i, part in enumerate(parts)
    )


def clean_text(s: object) -> str:
    """Return the canonical text of a cell.

    NFKC (full-width letters, digits and punctuation become ASCII, e.g. "，" -> ","),
    except that superscripts/subscripts are kept; non-breaking and ideographic
    spaces become spaces; zero-width and control characters are removed (line
    breaks kept); runs of spaces/tabs collapse to one space; every line is
    stripped and empty lines are dropped. None gives "".
    """
    return _clean(s, _SCRIPT_SPLIT)


def clean_prose(s: object) -> str:
    """Like :func:`clean_text`, but Chinese punctuation （），；：！？～ stays as written.

    Used for names, titles and descriptions that people read; full-width
    letters and digits still become ASCII ("１００" -> "100").
    """
    return _clean(s, _PROSE_SPLIT)


def _clean(s: object, keep: re.Pattern) -> str:
    if s is None:
        return ""
    text = _nfkc(str(s), keep).replace("\r\n", "\n").translate(_LINE_BREAKS)
    text = _INVISIBLE.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _compact(s: object) -> str:
    """clean_text without any whitespace, for parsing short codes and numbers."""
    return re.sub(r"\s+", "", clean_text(s))


def _shown(s: object) -> str:
    text = clean_text(s)
    return text if len(text) <= 40 else text[:40] + "…"


# Both ASCII and CJK punctuation/symbols; after NFKC most CJK marks are ASCII
# already, the rest (、。《》“” …) are caught by their Unicode category.
def normalize_title(s: object) -> str:
    """Return a dedupe key for a title: cleaned, without whitespace, punctuation or symbols, case-folded."""
    text = clean_text(s)
    return "".join(
        ch for ch in text
        if not ch.isspace() and unicodedata.category(ch)[0] not in ("P", "S")
    ).casefold()


# --------------------------------------------------------------------------- lists

_LIST_SEPARATORS = re.compile(r"[、,;/|\s]+")  # "，" and "；" are "," and ";" after NFKC


def split_keywords(s: object) -> list[str]:
    """Split a keyword cell on 、，,;；/| and whitespace; drop empties and repeats (case-insensitive), keep order."""
    seen: set[str] = set()
    result: list[str] = []
    for item in _LIST_SEPARATORS.split(clean_text(s)):
        item = item.strip("\"'“”‘’《》()[]【】")
        folded = item.casefold()
        if item and folded not in seen:
            seen.add(folded)
            result.append(item)
    return result


# --------------------------------------------------------------------------- money

_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
_UNIT = r"亿元|亿|千万元|千万|百万元|百万|万元|万|千元|元|w"
_UNIT_TO_WAN = {
    "亿元": 10000.0, "亿": 10000.0, "千万元": 1000.0, "千万": 1000.0, "百万元": 100.0, "百万": 100.0,
    "万元": 1.0, "万": 1.0, "w": 1.0, "千元": 0.1, "元": 0.0001, None: 1.0,
}
_AMOUNT = rf"(?:{_NUMBER})(?:{_UNIT})?"
_RANGE_SEP = r"-|~|至|到|—|–|―|－"
_MONEY_RE = re.compile(
    rf"^(?P<below>不超过|不高于|不多于|最多|最高|上限|≤|<=|<)?"
    rf"(?P<above>不低于|不少于|至少|最低|下限|≥|>=|>)?"
    rf"(?P<a>{_NUMBER})(?P<ua>{_UNIT})?"
    rf"(?:(?:{_RANGE_SEP})(?P<b>{_NUMBER})(?P<ub>{_UNIT})?)?"
    rf"(?P<suffix>以上|以下|以内|之内|左右)?$"
)
_NEGOTIABLE = re.compile(r"面议|面谈|协商|商议|议价|可议|洽谈|另议")
_MONEY_NOISE = re.compile(r"^(?:约|大约|人民币|rmb|¥|\$)+|(?:人民币)$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")


def parse_money_range(s: object) -> tuple[float | None, float | None, bool]:
    """Parse a price/budget cell into (min, max, negotiable), amounts in 万元.

    "50" -> (50, 50, False); "50-100", "50～100", "50至100万元" -> (50, 100, False);
    "100000元" -> (10, 10, False); "面议"/"协商" -> (None, None, True);
    "50万以上" -> (50, None, False); "不超过30" -> (None, 30, False);
    "50（可面议）" -> (50, 50, True). An empty cell gives (None, None, False).
    Anything else raises ValueError.
    """
    text = _compact(s).casefold()
    if not text:
        return None, None, False
    negotiable = bool(_NEGOTIABLE.search(text))
    rest = _NEGOTIABLE.sub("", text)
    rest = re.sub(r"[()\[\]【】,;:。、可或亦均]+$", "", rest)
    rest = re.sub(r"^[()\[\]【】,;:。、]+", "", rest)
    rest = re.sub(r"\([^()]*\)$", "", rest)  # trailing remark in brackets
    rest = _THOUSANDS.sub("", rest)
    rest = _MONEY_NOISE.sub("", rest).strip(",;:")
    if not rest:
        if negotiable:
            return None, None, True
        raise ValueError(f"无法识别的金额「{_shown(s)}」，请填写数字（万元）、范围（如“50-100”）或“面议”")
    m = _MONEY_RE.match(rest)
    if not m:
        raise ValueError(f"无法识别的金额「{_shown(s)}」，请填写数字（万元）、范围（如“50-100”）或“面议”")
    unit_b = m["ub"]
    # "50至100万元": a unit written only after the range applies to both ends.
    unit_a = m["ua"] or unit_b
    low = float(m["a"]) * _UNIT_TO_WAN[unit_a]
    high = float(m["b"]) * _UNIT_TO_WAN[unit_b] if m["b"] is not None else low
    low, high = round(low, 6), round(high, 6)
    if m["b"] is not None and low > high:
        raise ValueError(f"金额范围「{_shown(s)}」的下限大于上限")
    if m["below"] or m["suffix"] in ("以下", "以内", "之内"):
        if m["b"] is not None:
            raise ValueError(f"无法识别的金额「{_shown(s)}」，请填写数字（万元）、范围（如“50-100”）或“面议”")
        return None, high, negotiable
    if m["above"] or m["suffix"] == "以上":
        if m["b"] is not None:
            raise ValueError(f"无法识别的金额「{_shown(s)}」，请填写数字（万元）、范围（如“50-100”）或“面议”")
        return low, None, negotiable
    return low, high, negotiable


# --------------------------------------------------------------------------- maturity

STAGES: tuple[str, ...] = tuple(STAGE_TRL_RANGE)
# Checked from the most advanced stage down: "已完成小试，正在中试" is 中试.
_STAGE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("产业化", ("产业化", "量产", "批量生产", "规模化生产", "规模生产", "商业化", "商品化", "市场化", "已转化", "推广应用")),
    ("中试", ("中试", "中间试验", "工程化")),
    ("小试", ("小试",)),
    ("实验室", ("实验室", "研发阶段", "研究阶段", "基础研究", "理论研究", "原理", "概念", "研发中", "在研")),
)
_TRL_TAGGED = re.compile(r"trl[-:]?(\d{1,2})")
_TRL_BARE = re.compile(r"第?(\d{1,2})级?(?:\(.*\))?")


def _stage_for_trl(trl: int) -> str:
    stage = stage_for_trl(trl)
    assert stage is not None, trl  # the caller checks 1..9
    return stage


def parse_maturity(s: object) -> tuple[int | None, str | None]:
    """Parse a maturity cell into (trl, stage).

    Stages are 实验室 (TRL 1-3), 小试 (4-5), 中试 (6-7), 产业化 (8-9). "TRL6" or "6"
    gives (6, "中试"); a stage word ("中试阶段", "小试成功", "已产业化", "研发阶段")
    gives (None, stage) because the exact level is unknown. An empty cell gives
    (None, None); anything else raises ValueError.
    """
    text = _compact(s).casefold()
    if not text:
        return None, None
    m = _TRL_TAGGED.search(text) or _TRL_BARE.fullmatch(text)
    if m:
        trl = int(m[1])
        if not 1 <= trl <= 9:
            raise ValueError(f"技术成熟度等级「{_shown(s)}」应为 1～9（TRL1～TRL9）")
        return trl, _stage_for_trl(trl)
    for stage, words in _STAGE_WORDS:
        if any(word in text for word in words):
            return None, stage
    raise ValueError(
        f"无法识别的成熟度「{_shown(s)}」，请填写 实验室 / 小试 / 中试 / 产业化，或 TRL1～TRL9"
    )


# --------------------------------------------------------------------------- modes

_MODE_SYNONYMS: dict[str, str] = {
    **{mode: mode for mode in COOPERATION_MODES},
    "开发": "技术开发", "委托开发": "技术开发", "合作开发": "技术开发", "联合开发": "技术开发",
    "委托研发": "技术开发", "合作研发": "技术开发", "联合研发": "技术开发",
    "技术攻关": "技术开发", "联合攻关": "技术开发",
    "转让": "技术转让", "专利转让": "技术转让", "成果转让": "技术转让", "专利权转让": "技术转让",
    "许可": "技术许可", "专利许可": "技术许可", "许可使用": "技术许可", "专利实施许可": "技术许可",
    "技术授权": "技术许可", "授权使用": "技术许可",
    "入股": "作价投资入股", "技术入股": "作价投资入股", "作价入股": "作价投资入股",
    "作价投资": "作价投资入股", "投资入股": "作价投资入股", "技术作价入股": "作价投资入股",
    "共建平台": "共建研发平台", "共建实验室": "共建研发平台", "共建研发中心": "共建研发平台",
    "共建研发机构": "共建研发平台", "联合实验室": "共建研发平台", "共建": "共建研发平台",
    "咨询": "技术咨询", "服务": "技术服务",
}
# Words that state no preference; they add nothing, so they are dropped rather than rejected.
_NO_PREFERENCE = {"面议", "协商", "不限", "均可", "皆可", "其他", "其它", "等"}


def parse_modes(s: object) -> list[str]:
    """Parse a cooperation-mode cell into canonical modes (order kept, no repeats).

    Items are split on 、,，;；/ and whitespace and mapped through known synonyms
    (委托开发 -> 技术开发, 专利许可 -> 技术许可, 技术入股 -> 作价投资入股 …);
    "面议", "不限", "其他" are dropped. An empty cell gives []. An unknown item
    raises ValueError naming it.
    """
    result: list[str] = []
    for item in _LIST_SEPARATORS.split(clean_text(s)):
        item = item.strip("\"'“”()[]【】.。")
        if not item or item in _NO_PREFERENCE:
            continue
        mode = _MODE_SYNONYMS.get(item)
        if mode is None and item.endswith(("方式", "等")):
            mode = _MODE_SYNONYMS.get(item.removesuffix("方式").removesuffix("等"))
        if mode is None:
            raise ValueError(
                f"无法识别的合作方式「{_shown(item)}」，可填写：{'、'.join(COOPERATION_MODES)}"
            )
        if mode not in result:
            result.append(mode)
    return result


# --------------------------------------------------------------------------- dates

_DATE_YMD = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})[日号]?$")
_TIME_SUFFIX = re.compile(r"(?:t|\s)+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?$")
_DATE_YM = re.compile(r"^(\d{4})[-/.年](\d{1,2})月?(?:底|末|份)?$")
_DATE_Y = re.compile(r"^(\d{4})年(?:底|末|内)?$")
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
# Excel day serials for 1970..2099, seen when a date cell was formatted as a number.
_EXCEL_SERIAL = re.compile(r"^\d{5}$")
_EXCEL_EPOCH = _dt.date(1899, 12, 30)


def _month_end(year: int, month: int) -> _dt.date:
    return _dt.date(year, month, calendar.monthrange(year, month)[1])


def parse_date(s: object) -> _dt.date:
    """Parse a date cell.

    Accepts 2026-12-31, 2026/12/31, 2026.12.31, 2026年12月31日, 20261231, a time
    part after the date, 2026-12 / 2026年12月 (last day of that month), 2026年 /
    2026年底 (31 December) and an Excel day serial. Raises ValueError otherwise,
    including for an empty cell or an impossible date.
    """
    if isinstance(s, _dt.datetime):
        return s.date()
    if isinstance(s, _dt.date):
        return s
    text = _TIME_SUFFIX.sub("", clean_text(s).casefold())
    text = re.sub(r"\s+", "", text)
    bad = f"无法识别的日期「{_shown(s)}」，请填写如“2026-12-31”或“2026年12月”"
    if not text:
        raise ValueError("日期为空，请填写如“2026-12-31”或“2026年12月”")
    try:
        if m := _DATE_YMD.match(text) or _DATE_COMPACT.match(text):
            return _dt.date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DATE_YM.match(text):
            return _month_end(int(m[1]), int(m[2]))
        if m := _DATE_Y.match(text):
            return _dt.date(int(m[1]), 12, 31)
    except ValueError:
        raise ValueError(f"日期「{_shown(s)}」不存在，请检查年月日") from None
    if _EXCEL_SERIAL.match(text) and 25569 <= int(text) <= 73415:
        return _EXCEL_EPOCH + _dt.timedelta(days=int(text))
    raise ValueError(bad)


# --------------------------------------------------------------------------- visibility

_PUBLIC = {"公开", "是", "public", "y", "yes", "true", "对外公开", "全部公开", "完全公开", "可公开", "√"}
_BROKERS = {"仅经纪人可见", "仅经纪人", "经纪人可见", "不公开", "否", "保密", "brokers", "broker",
            "n", "no", "false", "非公开", "不对外公开", "内部", "仅内部", "×"}


def parse_visibility(s: object) -> str:
    """Parse a visibility cell into "public" or "brokers".

    公开/是/public -> "public"; 仅经纪人可见/不公开/否/保密/brokers -> "brokers".
    Raises ValueError otherwise, including for an empty cell (the caller picks the default).
    """
    text = _compact(s).casefold()
    if text in _PUBLIC:
        return "public"
    if text in _BROKERS:
        return "brokers"
    if any(word in text for word in ("不公开", "保密", "经纪人", "不对外", "非公开")):
        return "brokers"
    if text.endswith("公开") and not text.startswith(("不", "非", "半")):
        return "public"
    raise ValueError(f"无法识别的公开方式「{_shown(s)}」，请填写“公开”或“仅经纪人可见”")
