"""Downloadable import templates (.xlsx and .csv) built from the canonical columns."""

from __future__ import annotations

import csv
import datetime as _dt
import io

from .columns import Column, columns_for, kind_label

__all__ = ["EXAMPLE_ROWS", "template_xlsx", "template_csv"]

# Illustrative only: the title says 示例 so a forgotten example row is easy to spot.
EXAMPLE_ROWS: dict[str, dict[str, object]] = {
    "outcomes": {
        "institution": "吉林大学威海仿生研究院",
        "institution_kind": "新型研发机构",
        "institution_location": "山东省威海市",
        "external_id": "CG-2025-001",
        "title": "示例：激光仿生耦合耐磨抗疲劳技术",
        "abstract": "借鉴生物体表耐磨结构，用激光在金属零件表面加工仿生单元，"
                    "提高耐磨性和抗疲劳寿命，可用于轧辊、刹车盘、模具等易损件。（示例内容，导入前请删除本行）",
        "keywords": "激光加工、仿生、耐磨、抗疲劳",
        "field": "先进制造",
        "industry_chain": "仿生",
        "team": "王教授团队",
        "maturity": "中试",
        "ip_type": "发明专利",
        "ip_number": "ZL20XX1XXXXXXX.X",
        "cooperation_modes": "技术许可、技术开发",
        "asking_price": "50-100",
        "contact": "王老师",
        "phone": "0631-0000000",
    },
    "needs": {
        "enterprise": "威海某某机电有限公司",
        "credit_code": "91371000XXXXXXXXXX",
        "region": "文登区龙山街道",
        "enterprise_size": "中型",
        "external_id": "XQ-2025-001",
        "title": "示例：电机转子动平衡在线检测技术",
        "description": "现有转子动平衡检测依靠人工，效率低、一致性差。希望开发在线自动检测与校正装置，"
                       "检测精度达到G2.5级，节拍不超过60秒/件。（示例内容，导入前请删除本行）",
        "keywords": "动平衡、在线检测、电机转子",
        "field": "智能制造",
        "industry_chain": "汽车机电",
        "budget": "50-100",
        "cooperation_modes": "技术开发、技术服务",
        "deadline": _dt.date(2026, 12, 31),
        "visibility": "公开",
        "contact": "李经理",
        "phone": "0631-0000000",
    },
}

# Drop-down suggestions; free text stays allowed (e.g. "TRL6"), so no error style.
_CHOICES: dict[str, tuple[str, ...]] = {
    "institution_kind": ("高校", "科研院所", "新型研发机构"),
    "maturity": ("实验室", "小试", "中试", "产业化"),
    "enterprise_size": ("大型", "中型", "小型", "微型"),
    "visibility": ("公开", "仅经纪人可见"),
    "industry_chain": ("汽车机电", "新能源新材料", "医药及健康食品", "电子信息", "海洋生物",
                       "现代农业", "智能船舶", "仿生", "碳纤维"),
}
# Typed as text so Excel keeps leading zeros and long digit strings intact.
_TEXT_KEYS = {"external_id", "ip_number", "phone", "credit_code"}
_LONG_KEYS = {"abstract", "description"}
_TEMPLATE_ROWS = 1000


def _example_text(value: object) -> str:
    if isinstance(value, _dt.date):
        return value.isoformat()
    return str(value)


def _display_width(text: str) -> int:
    # CJK characters take about two Latin character widths in Excel.
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def template_xlsx(kind: str) -> bytes:
    """Return an .xlsx template for ``kind``.

    Sheet 1: the template headers in canonical order (required ones prefixed with
    "*", bold, frozen, widths set) and one example row. Sheet 2 "填写说明": one row
    per column with header, 是/否 required, accepted aliases and help text.
    ValueError for an unknown kind.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    columns = columns_for(kind)
    example = EXAMPLE_ROWS[kind]
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = f"{kind_label(kind)}导入模板"
    header_font = Font(bold=True)
    required_font = Font(bold=True, color="C00000")
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    for index, column in enumerate(columns, start=1):
        letter = get_column_letter(index)
        head = sheet.cell(row=1, column=index, value=("*" if column.required else "") + column.header)
        head.font = required_font if column.required else header_font
        head.fill = header_fill
        head.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        value = example.get(column.key, "")
        cell = sheet.cell(row=2, column=index, value=value)
        if isinstance(value, _dt.date):
            cell.number_format = "yyyy-mm-dd"
        elif column.key in _TEXT_KEYS:
            cell.number_format = "@"
        if column.key in _LONG_KEYS:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
            width = 60
        else:
            width = max(_display_width(head.value), _display_width(_example_text(value))) + 2
            width = min(max(width, 10), 40)
        sheet.column_dimensions[letter].width = width
        if column.key in _CHOICES:
            validation = DataValidation(
                type="list", formula1='"' + ",".join(_CHOICES[column.key]) + '"',
                allow_blank=True, showErrorMessage=False,
            )
            validation.add(f"{letter}2:{letter}{_TEMPLATE_ROWS + 1}")
            sheet.add_data_validation(validation)
    sheet.freeze_panes = "A2"
    sheet.row_dimensions[1].height = 24

    _write_help_sheet(workbook.create_sheet("填写说明"), columns)

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _write_help_sheet(sheet, columns: tuple[Column, ...]) -> None:
    from openpyxl.styles import Alignment, Font

    sheet.append(["列名", "是否必填", "也可识别的列名", "填写说明"])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for column in columns:
        sheet.append([column.header, "是" if column.required else "否", "、".join(column.aliases), column.help])
    for letter, width in zip("ABCD", (20, 10, 50, 80)):
        sheet.column_dimensions[letter].width = width
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "A2"


def template_csv(kind: str) -> bytes:
    """Return a UTF-8 (with BOM, so Excel shows Chinese correctly) CSV template for ``kind``:
    the template headers without "*" marks and the same example row. ValueError for an unknown kind."""
    columns = columns_for(kind)
    example = EXAMPLE_ROWS[kind]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([column.header for column in columns])
    writer.writerow([_example_text(example.get(column.key, "")) for column in columns])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
