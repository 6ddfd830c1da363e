"""A BEIR-style evaluation set: queries, corpus and graded relevance labels.

Format (one JSON object per line): ``queries.jsonl`` {"id", "text", "category"?, ...},
``corpus.jsonl`` {"id", "title"?, "text", ...}, ``qrels.jsonl`` {"query_id", "doc_id",
"relevance"} (0 = not relevant, higher = better). BEIR's ``qrels/*.tsv`` layout
(query-id, corpus-id, score) is read too, so public sets work as downloaded.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path


class DatasetError(ValueError):
    """The directory is not a readable evaluation set (message in Chinese)."""


@dataclass
class EvalQuery:
    id: str
    text: str
    category: str = ""


@dataclass
class EvalDoc:
    id: str
    title: str
    text: str


@dataclass
class EvalSet:
    name: str
    queries: list[EvalQuery]
    corpus: list[EvalDoc]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path.name} 第 {n} 行不是合法 JSON：{exc.msg}") from exc
            if not isinstance(row, dict):
                raise DatasetError(f"{path.name} 第 {n} 行应为 JSON 对象")
            rows.append(row)
    return rows


def _read_qrels(directory: Path) -> list[tuple[str, str, int]]:
    jsonl = directory / "qrels.jsonl"
    if jsonl.exists():
        out = []
        for row in _read_jsonl(jsonl):
            try:
                out.append((str(row["query_id"]), str(row["doc_id"]), int(row.get("relevance", 1))))
            except (KeyError, TypeError, ValueError) as exc:
                raise DatasetError(f"qrels.jsonl 缺少 query_id/doc_id 或 relevance 不是整数：{row}") from exc
        return out
    tsvs = sorted((directory / "qrels").glob("*.tsv")) if (directory / "qrels").is_dir() else []
    if not tsvs:
        raise DatasetError(f"{directory} 中没有 qrels.jsonl（或 BEIR 的 qrels/*.tsv）")
    out = []
    for path in tsvs:
        with path.open(encoding="utf-8") as fh:
            for row in csv.reader(fh, delimiter="\t"):
                if len(row) < 3 or not row[2].lstrip("-").isdigit():
                    continue  # header line
                out.append((row[0], row[1], int(row[2])))
    return out


def load_eval_set(directory: str | Path, split: str | None = None) -> EvalSet:
    """Read a BEIR-style directory; ``split`` keeps only queries whose "split" field matches.

    Raises :class:`DatasetError` with a Chinese message when a file is missing
    or malformed, or when no query has a relevance label.
    """
    directory = Path(directory)
    for name in ("queries.jsonl", "corpus.jsonl"):
        if not (directory / name).is_file():
            raise DatasetError(f"{directory} 中没有 {name}")
    queries = []
    for row in _read_jsonl(directory / "queries.jsonl"):
        if split and row.get("split") not in (None, split):
            continue
        if "id" not in row or "text" not in row:
            raise DatasetError(f"queries.jsonl 的每行都需要 id 和 text：{row}")
        queries.append(EvalQuery(str(row["id"]), str(row["text"]), str(row.get("category") or "")))
    corpus = []
    for row in _read_jsonl(directory / "corpus.jsonl"):
        if "id" not in row or ("text" not in row and "title" not in row):
            raise DatasetError(f"corpus.jsonl 的每行都需要 id 和 text：{str(row)[:200]}")
        corpus.append(EvalDoc(str(row["id"]), str(row.get("title") or ""), str(row.get("text") or "")))
    doc_ids = {d.id for d in corpus}
    qrels: dict[str, dict[str, int]] = {}
    for qid, did, rel in _read_qrels(directory):
        if did in doc_ids:
            qrels.setdefault(qid, {})[did] = rel
    queries = [q for q in queries if q.id in qrels]
    if not queries:
        raise DatasetError(f"{directory} 中没有带相关性标注的查询" + (f"（split={split}）" if split else ""))
    return EvalSet(directory.name, queries, corpus, qrels)


def subsample(eval_set: EvalSet, docs: int, queries: int | None = None, seed: int = 0) -> EvalSet:
    """A smaller set for quick checks: the first ``queries`` queries, every document they judge,
    and random other documents up to ``docs`` in all (distractors keep the task honest)."""
    import random

    kept_queries = eval_set.queries[:queries] if queries else list(eval_set.queries)
    judged = {d for q in kept_queries for d in eval_set.qrels[q.id]}
    others = [d for d in eval_set.corpus if d.id not in judged]
    random.Random(seed).shuffle(others)
    extra = {d.id for d in others[: max(0, docs - len(judged))]}
    corpus = [d for d in eval_set.corpus if d.id in judged or d.id in extra]
    return EvalSet(f"{eval_set.name}[{len(kept_queries)}q/{len(corpus)}d]", kept_queries, corpus,
                   {q.id: eval_set.qrels[q.id] for q in kept_queries})
