"""Pydantic validation errors in plain Chinese."""
from __future__ import annotations

from pydantic import ValidationError

FIELD_LABELS = {
    "name": "名称", "title": "名称", "description": "需求内容", "abstract": "成果简介", "keywords": "关键词",
    "field": "所属领域", "industry_chain": "产业链", "budget_min": "预算下限", "budget_max": "预算上限",
    "price_min": "报价下限", "price_max": "报价上限", "cooperation_modes": "合作方式", "deadline": "截止日期",
    "visibility": "公开方式", "status": "状态", "trl": "技术成熟度（TRL）", "stage": "成熟度阶段", "team": "团队",
    "credit_code": "统一社会信用代码", "region": "区域", "size": "企业规模", "kind": "单位类型", "location": "所在地",
    "enterprise_id": "企业", "institution_id": "高校/院所", "text": "检索文本", "target": "检索对象", "k": "返回条数",
    "contact": "联系人", "phone": "联系电话", "ip_type": "知识产权类型", "ip_number": "专利号",
    "cooperation_mode": "合作方式", "broker": "经纪人", "to_stage": "目标阶段", "version": "版本号",
    "decline_reason": "未成功原因", "amount_wan": "合同金额", "signed_date": "签约日期", "count": "目标数",
    "year": "年份", "year_start": "起始年", "year_end": "结束年", "contract_type": "合同类型",
    "as_of": "截至日期", "period": "期间", "format": "格式", "party": "参会方",
    "held_on": "举办日期", "need_ids": "需求编号", "enterprise_ids": "企业编号", "outcome_ids": "成果编号",
    "institution_ids": "高校/院所编号", "slots": "时段", "label": "时段名称", "starts_at": "开始时间", "ends_at": "结束时间",
    "max_meetings_per_firm": "每家企业最多会谈场次", "max_meetings_per_institution": "每家机构最多会谈场次",
    "max_meetings_per_slot": "每个时段桌数", "min_meetings_per_firm": "每家企业至少会谈场次",
    "candidates_per_need": "每条需求候选成果数", "min_score": "最低匹配分", "excluded_pairs": "排除的对接",
    "unavailable": "不可到场设置", "slot": "时段", "time_limit_s": "求解时限（秒）", "need_id": "需求", "outcome_id": "成果",
    "username": "用户名", "password": "密码", "display_name": "姓名", "role": "角色", "active": "启用状态",
    "old_password": "原密码", "new_password": "新密码", "grant_type": "授权方式", "entity": "对象类型",
    "entity_id": "对象编号", "actor_id": "操作人编号", "action": "操作", "since": "起始日期", "until": "截止日期",
    "explanation": "匹配解释", "note": "备注", "decline_note": "未成功说明", "score": "匹配分",
    "q": "关键词", "offset": "偏移量", "limit": "每页条数", "file": "文件", "user_id": "用户", "key_id": "密钥",
}
_TYPE_MESSAGES = {
    "missing": "为必填项",
    "string_too_short": "不能为空",
    "string_too_long": "过长（最多{max_length}字）",
    "too_long": "条目过多（最多{max_length}项）",
    "greater_than_equal": "不能小于{ge}",
    "less_than_equal": "不能大于{le}",
    "greater_than": "须大于{gt}",
    "less_than": "须小于{lt}",
    "int_parsing": "须为整数",
    "int_type": "须为整数",
    "float_parsing": "须为数字",
    "float_type": "须为数字",
    "bool_parsing": "须为 true 或 false",
    "date_from_datetime_parsing": "日期格式须为 YYYY-MM-DD",
    "date_parsing": "日期格式须为 YYYY-MM-DD",
    "date_type": "日期格式须为 YYYY-MM-DD",
    "datetime_parsing": "时间格式须为 YYYY-MM-DDTHH:MM",
    "datetime_from_date_parsing": "时间格式须为 YYYY-MM-DDTHH:MM",
    "datetime_type": "时间格式须为 YYYY-MM-DDTHH:MM",
    "too_short": "条目过少（至少{min_length}项）",
    "literal_error": "取值无效，可选：{expected}",
    "string_pattern_mismatch": "格式不正确",
    "extra_forbidden": "不是可接受的字段",
    "string_type": "须为文本",
    "list_type": "须为列表",
    "json_invalid": "不是有效的 JSON",
    "model_attributes_type": "须为 JSON 对象",
    "dict_type": "须为 JSON 对象",
}


def _label(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    names = [FIELD_LABELS.get(p, p) for p in parts if not p.isdigit()]
    return "·".join(names) or "请求"


def describe_error(err: dict) -> str:
    """One Chinese sentence for one pydantic error entry."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        message = str(ctx.get("error", err.get("msg", ""))).removeprefix("Value error, ")
        loc = _label(err.get("loc", ()))
        return message if loc == "请求" else f"「{loc}」{message}"
    template = _TYPE_MESSAGES.get(kind)
    if template is None:
        return f"「{_label(err.get('loc', ()))}」取值无效"
    if "expected" in ctx:
        # pydantic writes "'a', 'b' or 'c'"; a Chinese list reads 甲、乙、丙.
        ctx = {**ctx, "expected": str(ctx["expected"]).replace("'", "").replace(" or ", "、").replace(", ", "、")}
    try:
        text = template.format(**ctx)
    except (KeyError, IndexError):
        text = template
    return f"「{_label(err.get('loc', ()))}」{text}"


def describe_errors(exc: ValidationError | list[dict]) -> list[str]:
    """All errors of a validation failure, one Chinese sentence each."""
    errors = exc.errors() if isinstance(exc, ValidationError) else exc
    return [describe_error(e) for e in errors]
