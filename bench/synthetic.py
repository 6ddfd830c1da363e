"""A large synthetic service for benchmarks, built in minutes without encoding anything.

``build(data_dir, n_outcomes)`` fills a fresh database (a SQLite file in
``data_dir``, or a PostgreSQL schema) with ``n_outcomes`` outcomes and some
needs, plus one admin account, using bulk SQLAlchemy Core inserts:

- texts are real: outcome bodies recombine whole sentences of the abstracts in
  ../shared/eval/*/corpus.jsonl (seeded), titles and keywords come from the
  same abstract's terms, needs are the real enterprise needs of bdci2019;
- vectors are synthetic but clustered (300 topic centres, abstract → topic,
  sentence ≈ its abstract, document ≈ mean of its sentences), unit length, and
  written into ``embedding_cache`` under the real encoder's model id and the
  real text keys (:func:`matcher.documents.document_text`, ``sentences_of``),
  so the service's rebuild and its explanations read them instead of encoding.
  Bodies are allowed past the long-text threshold, so sentence scoring runs;
  sentences come from a bounded pool, so the sentence vectors stay few.

No ``index_changes`` rows are written: a rebuild reads the live records
themselves, and the log only matters for changes after it.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select, text

from bench.local_services import schema_url
from bench.paths import EVAL, REPO
from embeddings.encoder import DEFAULT_MODEL, _model_id, resolve_model_dir
from embeddings.vector_cache import embedding_cache, text_key
from matcher.documents import document_text, sentences_of
from matcher.explain import explain_terms, query_terms
from matcher.models import Enterprise, Institution, Need, Outcome
from matcher.textutil import embed_text, split_sentences, terms
from matcher.vocab import COOPERATION_MODES, INDUSTRY_CHAINS, STAGES

DIM = 384
ADMIN = ("bench_admin", "bench-password-2026")
_CITIES = ("威海", "文登", "荣成", "乳山", "烟台", "青岛", "济南", "淄博", "潍坊", "临沂", "北京", "上海", "南京", "杭州", "武汉")
_SUBJECTS = ("理工", "海洋", "农业", "医科", "工业", "科技", "交通", "石油", "师范", "材料")
_KINDS = ("大学", "学院", "研究院", "研究所", "新型研发机构")
_SUFFIXES = ("技术", "关键技术", "装置及方法", "系统", "新工艺", "制备方法", "集成应用")
_CHUNK = 20_000
# Bumped when what a built service holds changes (2: records keep explain_terms; 3: needs keep query_terms); an
# older build is rebuilt, except a format-2 build, which only needs its needs' query terms (_add_query_terms).
FORMAT = 3


@dataclass
class BenchService:
    """What a benchmark needs to know about a built service."""

    data_dir: Path
    database_url: str
    n_outcomes: int
    need_ids: list[int]
    model_id: str
    username: str = ADMIN[0]
    password: str = ADMIN[1]

    def env(self) -> dict[str, str]:
        """Environment variables that point ``matcher`` at this service."""
        return {**os.environ, "MATCHER_DATA_DIR": str(self.data_dir), "DATABASE_URL": self.database_url}


def model_id(data_dir: Path) -> str:
    """The model id the service's encoder will have (default model, configured backend), without loading it.

    For ``auto`` this is a new installation's choice, not the stored vectors' backend that ``auto`` keeps
    (embeddings.installed_backend): :func:`load_or_build` first re-files the synthetic vectors under this id, so the
    service then finds them there and keeps it.
    """
    from embeddings.onnx_backend import backend_model_id, check_backend
    from matcher.settings import Settings

    base = _model_id(DEFAULT_MODEL, resolve_model_dir(DEFAULT_MODEL, data_dir))
    return backend_model_id(base, check_backend(Settings().embedding_backend, data_dir))


def _abstracts() -> list[str]:
    seen: dict[str, None] = {}
    for path in sorted(EVAL.glob("*/corpus.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                seen.setdefault(json.loads(line)["text"].strip(), None)
    return [t for t in seen if len(t) >= 40]


def _needs() -> list[dict]:
    with (EVAL / "bdci2019_needs.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class _Texts:
    """The sentence pool and a clustered vector for every pooled sentence."""

    def __init__(self, rng: np.random.Generator):
        self.abstracts = _abstracts()
        self.sentences = [split_sentences(a) for a in self.abstracts]
        centres = rng.standard_normal((300, DIM))
        topic = rng.integers(0, len(centres), len(self.abstracts))
        self.topic_vec = _unit(centres[topic] + 0.8 * rng.standard_normal((len(self.abstracts), DIM)))
        self.sentence_vec: dict[str, np.ndarray] = {}
        for a, ss in enumerate(self.sentences):
            noise = rng.standard_normal((len(ss), DIM)) * 0.05
            for s, v in zip(ss, _unit(self.topic_vec[a] + noise)):
                self.sentence_vec.setdefault(s, v)
        self._terms: dict[int, list[str]] = {}

    def terms_of(self, a: int) -> list[str]:
        if a not in self._terms:
            self._terms[a] = [t for t in terms(self.abstracts[a]) if len(t) >= 2][:6] or ["新技术"]
        return self._terms[a]

    def vector_of_sentence(self, s: str, a: int, rng: np.random.Generator) -> np.ndarray:
        """A pooled sentence's vector; a sentence the splitter re-joined gets one near its abstract's topic."""
        v = self.sentence_vec.get(s)
        if v is None:
            v = _unit(self.topic_vec[a] + 0.05 * rng.standard_normal(DIM))
            self.sentence_vec[s] = v
        return v


def _engine(data_dir: Path, database_url: str | None):
    from matcher.db import make_engine, upgrade

    if database_url and database_url.startswith("postgresql"):
        schema = f"bench_{data_dir.name}"
        base = make_engine(database_url)
        with base.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        base.dispose()
        url = schema_url(database_url, schema)
    else:
        url = f"sqlite:///{(data_dir / 'matcher.db').resolve()}"
    engine = make_engine(url)
    upgrade(engine)
    return engine, url


def _owners(conn, rng) -> tuple[list[int], list[int]]:
    insts = []
    for n in range(3000):
        city = _CITIES[n % len(_CITIES)]
        kind = _KINDS[(n // len(_CITIES)) % len(_KINDS)]
        name = f"{city}{_SUBJECTS[(n // 75) % len(_SUBJECTS)]}{kind}{n // 750 or ''}第{n}分部" if n >= 150 else \
            f"{city}{_SUBJECTS[n % len(_SUBJECTS)]}{kind}{n}"
        insts.append({"name": name, "kind": "university" if "大学" in kind or "学院" in kind else "institute",
                      "location": f"山东省{city}市" if n % 3 else f"{city}", "locality": ("local", "weihai", "shandong", "other")[n % 4]})
    conn.execute(insert(Institution), insts)
    ents = [{"name": f"{_CITIES[n % len(_CITIES)]}合成企业{n}有限公司", "region": f"山东省{_CITIES[n % len(_CITIES)]}市",
             "industry_chain": INDUSTRY_CHAINS[n % len(INDUSTRY_CHAINS)], "size": ("小型", "中型", "大型")[n % 3]}
            for n in range(500)]
    conn.execute(insert(Enterprise), ents)
    inst_ids = list(conn.scalars(select(Institution.id)))
    ent_ids = list(conn.scalars(select(Enterprise.id)))
    return inst_ids, ent_ids


def _outcome_terms(fields: tuple[str, str, list[str]]) -> list[str]:
    title, abstract, keywords = fields
    return explain_terms(Outcome(title=title, abstract=abstract, keywords=keywords))


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, default=str).encode()).hexdigest()


def _outcome_rows(texts: _Texts, start: int, count: int, inst_ids, rng) -> tuple[list[dict], dict[str, np.ndarray]]:
    rows, vectors = [], {}
    stages = list(STAGES)
    for i in range(start, start + count):
        a = int(rng.integers(len(texts.abstracts)))
        body_sents = list(texts.sentences[a])
        if rng.random() < 0.5:  # half the bodies borrow from a second abstract: some pass the long-text threshold
            b = int(rng.integers(len(texts.abstracts)))
            body_sents += texts.sentences[b][: int(rng.integers(1, 4))]
        body = "".join(body_sents)
        kws = texts.terms_of(a)
        title = f"{kws[0]}{_SUFFIXES[i % len(_SUFFIXES)]}"
        keywords = kws[1:4]
        stage = stages[i % len(stages)]
        lo, hi = STAGES[stage]
        row = {"institution_id": inst_ids[int(rng.integers(len(inst_ids)))], "title": title,
               "title_key": f"{title.lower()}#syn{i}", "abstract": body, "keywords": keywords,
               "industry_chain": INDUSTRY_CHAINS[int(rng.integers(len(INDUSTRY_CHAINS)))], "stage": stage,
               "trl": int(rng.integers(lo, hi + 1)),
               "cooperation_modes": [COOPERATION_MODES[int(rng.integers(len(COOPERATION_MODES)))]],
               "price_min": float(rng.integers(5, 200)) if i % 3 else None, "price_max": None,
               "price_negotiable": i % 3 == 0, "status": "available"}
        row["content_hash"] = _hash(row)
        rows.append(row)
        sents = split_sentences(body) or [title]
        svecs = np.stack([texts.vector_of_sentence(s, a, rng) for s in sents])
        for s, v in zip(sents, svecs):
            vectors.setdefault(text_key(s, "passage"), v)
        doc = embed_text(title, body, keywords)
        vectors[text_key(doc, "passage")] = _unit(svecs.mean(axis=0) + 0.02 * rng.standard_normal(DIM))
    return rows, vectors


def _put_vectors(conn, model: str, vectors: dict[str, np.ndarray], written: set[str]) -> None:
    rows = [{"model": model, "text_hash": k, "dim": DIM, "vector": np.asarray(v, np.float32).tobytes()}
            for k, v in vectors.items() if k not in written]
    written.update(vectors)
    if rows:
        conn.execute(insert(embedding_cache), rows)


def _check_keys(engine) -> None:
    """The text keys written here are the ones the service computes (same functions, checked on a sample)."""
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        for r in session.scalars(select(Outcome).limit(50)).unique():
            assert document_text(r) == embed_text(r.title, r.abstract, list(r.keywords or []))
            assert sentences_of(r) == (split_sentences(r.abstract) or [r.title])


def link_models(data_dir: Path, shared: Path = REPO / "data" / "models") -> None:
    """Make ``data_dir/models`` the repo's model folder, so the model is built and kept once for every bench service.

    The folder is created when missing (a fresh clone where ``make run`` never ran): a link to nothing
    would make the model build fail.
    """
    shared = shared.resolve()
    shared.mkdir(parents=True, exist_ok=True)
    (data_dir / "models").symlink_to(shared, target_is_directory=True)


def build(data_dir: Path, n_outcomes: int, n_needs: int = 2000, database_url: str | None = None,
          seed: int = 7, log=print) -> BenchService:
    """Fill a fresh service in ``data_dir`` (wiped first) with ``n_outcomes`` outcomes and ``n_needs`` needs.

    Promises: every document and sentence text the service will look up has a
    vector in the cache under the default encoder's model id; one admin
    account (:data:`ADMIN`) exists; ``need_ids`` are live, public, open needs.
    """
    data_dir = Path(data_dir)
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    link_models(data_dir)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    texts = _Texts(rng)
    model = model_id(data_dir)
    engine, url = _engine(data_dir, database_url)
    written: set[str] = set()
    with engine.begin() as conn:
        conn.execute(embedding_cache.delete().where(embedding_cache.c.model == model))
        inst_ids, ent_ids = _owners(conn, rng)
    pool = multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1)
    for start in range(0, n_outcomes, _CHUNK):
        rows, vectors = _outcome_rows(texts, start, min(_CHUNK, n_outcomes - start), inst_ids, rng)
        # What the service stores at write (≈ 3 ms of jieba a record), on every core.
        stored = pool.map(_outcome_terms, [(r["title"], r["abstract"], r["keywords"]) for r in rows], chunksize=256)
        for row, t in zip(rows, stored):
            row["explain_terms"] = t
        with engine.begin() as conn:
            conn.execute(insert(Outcome), rows)
            _put_vectors(conn, model, vectors, written)
        log(f"  成果 {start + len(rows):,}/{n_outcomes:,}（{time.perf_counter() - started:.0f} s）")
    pool.close()
    pool.join()
    needs, vectors = [], {}
    source = _needs()
    for i in range(n_needs):
        src = source[i % len(source)]
        title = src.get("title") or src["text"][:20]
        title = title if i < len(source) else f"{title}（{i // len(source) + 1}期）"
        kws = terms(src["text"])[:3]
        row = {"enterprise_id": ent_ids[i % len(ent_ids)], "title": title, "title_key": f"{title.lower()}#syn{i}",
               "description": src["text"], "keywords": kws, "industry_chain": INDUSTRY_CHAINS[i % len(INDUSTRY_CHAINS)],
               "cooperation_modes": [COOPERATION_MODES[i % len(COOPERATION_MODES)]], "budget_min": 10.0 + i % 90,
               "budget_max": 100.0 + i % 400, "visibility": "public", "status": "open"}
        row["content_hash"] = _hash(row)
        need = Need(title=title, description=src["text"], keywords=kws)
        row["explain_terms"], row["query_terms"] = explain_terms(need), query_terms(need)
        needs.append(row)
        a = int(rng.integers(len(texts.abstracts)))
        vectors[text_key(embed_text(title, src["text"], kws), "query")] = _unit(
            texts.topic_vec[a] + 0.05 * rng.standard_normal(DIM))
    with engine.begin() as conn:
        conn.execute(insert(Need), needs)
        _put_vectors(conn, model, vectors, written)
        need_ids = list(conn.scalars(select(Need.id).order_by(Need.id)))
    _check_keys(engine)
    _admin(engine)
    engine.dispose()
    log(f"合成数据完成：{n_outcomes:,} 条成果、{n_needs:,} 条需求、{len(written):,} 个向量，用时 "
        f"{time.perf_counter() - started:.0f} s")
    service = BenchService(data_dir, url, n_outcomes, need_ids, model)
    (data_dir / "bench.json").write_text(json.dumps({"format": FORMAT, "n_outcomes": n_outcomes, "database_url": url,
                                                     "need_ids": need_ids, "model_id": model}))
    return service


def _admin(engine) -> None:
    from sqlalchemy.orm import Session

    from matcher.accounts.users import UserIn, create_user

    with Session(engine) as session:
        create_user(session, UserIn(username=ADMIN[0], password=ADMIN[1], role="admin"))
        session.commit()


def _add_query_terms(url: str) -> None:
    """Bring a format-2 build to format 3: the schema's newer migrations, then each need's stored query terms."""
    from sqlalchemy import update

    from matcher.db import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        rows = conn.execute(select(Need.id, Need.title, Need.description, Need.keywords)).all()
        for need_id, title, description, keywords in rows:
            terms_of = query_terms(Need(title=title, description=description, keywords=keywords))
            conn.execute(update(Need).where(Need.id == need_id).values(query_terms=terms_of))
    engine.dispose()


def _rekey(url: str, old: str, new: str) -> None:
    """File the synthetic vectors under another model id (the service's backend changed), instead of rebuilding."""
    from matcher.db import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(embedding_cache.delete().where(embedding_cache.c.model == new))
        conn.execute(embedding_cache.update().where(embedding_cache.c.model == old).values(model=new))
    engine.dispose()


def load_or_build(data_dir: Path, n_outcomes: int, database_url: str | None = None, log=print) -> BenchService:
    """The service built earlier in ``data_dir`` for this size, or a fresh one."""
    meta_path = Path(data_dir) / "bench.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        same_store = (meta["database_url"].startswith("sqlite") if database_url is None
                      else meta["database_url"].startswith(database_url.split("?")[0]))
        if meta["n_outcomes"] == n_outcomes and same_store and meta.get("format") == 2:
            _add_query_terms(meta["database_url"])  # seconds, where a rebuild of 10^6 outcomes takes an hour
            meta["format"] = FORMAT
            meta_path.write_text(json.dumps(meta))
        if meta["n_outcomes"] == n_outcomes and same_store and meta.get("format") == FORMAT:
            current = model_id(Path(data_dir))
            if meta["model_id"] != current:
                _rekey(meta["database_url"], meta["model_id"], current)
                meta["model_id"] = current
                meta_path.write_text(json.dumps(meta))
                shutil.rmtree(Path(data_dir) / "index", ignore_errors=True)
            return BenchService(Path(data_dir), meta["database_url"], n_outcomes, meta["need_ids"], current)
    return build(Path(data_dir), n_outcomes, database_url=database_url, log=log)
