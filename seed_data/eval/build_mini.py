"""Rebuild the committed CSL-only evaluation subsets from ../shared/eval.

Only documents whose source is the CSL benchmark (Apache-2.0) are kept, with
the dev queries whose labelled document is among them; FewCLUE and BDCI text
never leaves ../shared. Run: python seed_data/eval/build_mini.py
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "eval"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def build(name: str) -> None:
    src = SHARED / name
    corpus = [d for d in _rows(src / "corpus.jsonl") if d.get("source", "").startswith("CSL-benchmark")]
    ids = {d["id"] for d in corpus}
    qrels = [r for r in _rows(src / "qrels.jsonl") if r["doc_id"] in ids]
    queries = [q for q in _rows(src / "queries.jsonl") if q["id"] in {r["query_id"] for r in qrels}]
    out = HERE / f"{name}_csl"
    out.mkdir(exist_ok=True)
    _write(out / "corpus.jsonl", corpus)
    _write(out / "qrels.jsonl", qrels)
    _write(out / "queries.jsonl", queries)
    print(f"{out.name}: {len(queries)} queries, {len(corpus)} documents")


if __name__ == "__main__":
    for set_name in ("csl_kw_hard", "csl_goal"):
        build(set_name)
