"""Small builders for test uploads."""
from __future__ import annotations

import csv
import io

from openpyxl import Workbook

OUTCOME_HEADER = ["单位名称", "单位所在地", "成果名称", "成果简介", "产业链", "成熟度", "合作方式", "意向价格（万元）"]
OUTCOMES = [
    ["鲁东大学", "山东省烟台市", "海马新种质创制及产业化应用",
     "培育出生长快、抗病力强的海马新品系，建立了工厂化育苗与养殖体系，苗种成活率显著提高。", "海洋生物", "中试", "技术转让", "50-100"],
    ["山东大学（威海）", "山东省威海市", "锂离子动力电池液冷散热技术",
     "开发了电池包液冷板与热管理控制策略，电芯温差控制在3℃以内。适用于新能源汽车动力电池包。", "新能源新材料", "产业化", "技术开发、技术转让", "面议"],
    ["吉林大学威海仿生研究院", "山东省威海市文登区", "激光仿生耦合耐磨抗疲劳技术",
     "借鉴生物体表耐磨结构，用激光在金属零件表面加工仿生单元，提高曲轴、轧辊等零件的耐磨性和抗疲劳寿命。", "仿生", "中试", "技术许可", "30"],
]
NEED_HEADER = ["企业名称", "所在区域", "需求名称", "需求内容", "产业链", "预算（万元）", "合作方式"]
NEEDS = [
    ["威海银泽生物科技有限公司", "文登区龙山街道", "海马人工繁育技术",
     "需要提高海马苗种成活率，解决人工养殖过程中的病害问题。", "海洋生物", "80", "技术转让"],
    ["天润工业技术股份有限公司", "文登区天福街道", "曲轴表面耐磨强化",
     "现有曲轴轴颈磨损快，希望通过表面处理提高耐磨和抗疲劳性能。", "汽车机电", "50-100", "技术许可"],
]


def xlsx(rows: list[list]) -> bytes:
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_bytes(rows: list[list], encoding: str = "utf-8-sig") -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode(encoding)


def upload(client, kind: str, data: bytes, name: str = "list.xlsx", **params):
    return client.post(f"/imports/{kind}", files={"file": (name, data)}, params=params)


def load_small(client) -> None:
    """Import the three outcomes and two needs above through the API."""
    assert upload(client, "outcomes", xlsx([OUTCOME_HEADER, *OUTCOMES])).status_code == 200
    assert upload(client, "needs", xlsx([NEED_HEADER, *NEEDS])).status_code == 200


def by_title(client, side: str, title: str) -> dict:
    items = client.get(f"/{side}", params={"q": title}).json()["items"]
    return next(i for i in items if i["title"] == title)
