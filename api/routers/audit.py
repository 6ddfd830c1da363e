"""The audit log, read-only."""
from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Query

from matcher import audit

from ..deps import DB, Limit, Offset, QueryId, require
from ..schemas import AuditEntryOut, Page

router = APIRouter(tags=["审计"])
Entity = Literal[tuple(sorted(set(audit.ENTITIES.values())))]  # type: ignore[valid-type]


@router.get("/audit", response_model=Page[AuditEntryOut], summary="审计日志",
            description="每次对需求、成果、对接、项目、目标、区域、用户、企业、高校/院所、API 密钥和对接会的新建、修改、删除："
                        "谁（actor_id、actor_name、actor_role）、何时（at，UTC）、经由哪个请求（via）、"
                        "对象（entity、entity_id）、各字段修改前后的值（changes；密码等机密只记“已修改”）。"
                        "按时间倒序分页；since/until 为北京时间日期（含当天）。日志只增不改：没有任何接口能修改或删除它，"
                        "数据库触发器也拒绝 UPDATE 和 DELETE。",
            dependencies=[require(note="只有管理员可以查看审计日志。")])
def list_audit(db: DB, entity: Entity | None = None, entity_id: QueryId = None, actor_id: QueryId = None,
               action: Literal["create", "update", "delete", "revoke"] | None = None,
               since: date | None = Query(None, description="起始日期 YYYY-MM-DD（含）"),
               until: date | None = Query(None, description="截止日期 YYYY-MM-DD（含）"),
               offset: Offset = 0, limit: Limit = 50):
    total, items = audit.list_entries(db, entity=entity, entity_id=entity_id, actor_id=actor_id, action=action,
                                      since=since, until=until, offset=offset, limit=limit)
    return {"total": total, "offset": offset, "limit": limit, "items": items}
