"""The fixed vocabularies of the domain, with their Chinese names."""
from __future__ import annotations

INDUSTRY_CHAINS = ("汽车机电", "新能源新材料", "医药及健康食品", "电子信息", "海洋生物", "现代农业", "智能船舶", "仿生", "碳纤维")

COOPERATION_MODES = ("技术开发", "技术转让", "技术许可", "作价投资入股", "技术咨询", "技术服务", "共建研发平台")

# Maturity stages and the TRL range each covers.
STAGES = {"实验室": (1, 3), "小试": (4, 5), "中试": (6, 7), "产业化": (8, 9)}

INSTITUTION_KINDS = {"university": "高校", "institute": "科研院所", "new_rd": "新型研发机构"}

# Locality tiers in the order the Wendeng plan gives them: local first.
LOCALITY_TIERS = {"local": "文登本地", "weihai": "威海市", "shandong": "山东省", "other": "省外"}

NEED_STATUSES = {"open": "征集中", "matched": "已对接", "closed": "已关闭"}
OUTCOME_STATUSES = {"available": "可转化", "transferred": "已转化", "withdrawn": "已撤回"}
VISIBILITIES = {"public": "公开", "brokers": "仅经纪人可见"}

PAIRING_STAGES = {
    "proposed": "已推荐",
    "contacted": "已联系",
    "negotiating": "洽谈中",
    "signed": "已签约",
    "declined": "未成功",
}
DECLINE_REASONS = {
    "trl_gap": "技术成熟度不够",
    "price": "价格",
    "benefit_unclear": "收益不明确",
    "no_capacity": "企业无承接能力",
    "institution_unwilling": "高校无意向",
    "other": "其他",
}


def stage_for_trl(trl: int | None) -> str | None:
    """The maturity stage a TRL level belongs to."""
    if trl is None:
        return None
    for stage, (low, high) in STAGES.items():
        if low <= trl <= high:
            return stage
    return None


def locality_tier(location: str | None, name: str | None = None) -> str | None:
    """Classify an institution's location as local / weihai / shandong / other.

    Without a location the name may still tell (山东大学（威海）); a name that
    names no place gives None, never "other": a missing field must not score.
    """
    if not location:
        tier = locality_tier(name) if name else None
        return None if tier == "other" else tier
    if "文登" in location:
        return "local"
    if "威海" in location or any(d in location for d in ("环翠", "荣成", "乳山")):
        return "weihai"
    if "山东" in location or any(
        c in location for c in ("济南", "青岛", "烟台", "潍坊", "淄博", "济宁", "泰安", "临沂", "德州", "聊城", "滨州", "菏泽", "枣庄", "日照", "东营")
    ):
        return "shandong"
    return "other"
