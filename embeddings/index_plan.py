"""Which FAISS structure holds how many vectors, and how to build one.

Below ``FLAT_LIMIT`` vectors an exact flat index answers a single query fast
enough, so nothing approximate is worth its recall loss. Above it an
inverted-file index (IVF-Flat) scans only the lists nearest the query. IVF was
chosen over HNSW by measurement (docs/benchmarks.md, "Index at scale"): at 1M
vectors on two cores it trains and fills in a fraction of HNSW's build time,
it deletes for real (no tombstones to rebuild away) and it stores no graph.

``nlist`` follows the size; ``nprobe`` is not guessed but calibrated on the
data just indexed: the smallest number of probed lists whose recall@10 against
exact search reaches ``CALIBRATION_RECALL``, kept above the 0.95 the service
promises so that unseen queries still clear it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import faiss
import numpy as np

# Measured (bench/bench_index.py --flat-curve): flat single-query latency stays
# within a few milliseconds up to here on two cores; IVF pays off beyond it.
FLAT_LIMIT = 50_000
# An approximate index is only rebuilt for its size once it has grown or shrunk
# this many times past the size it was planned for (lists too long or too short).
REPLAN_FACTOR = 4.0
RECALL_TARGET = 0.95
CALIBRATION_RECALL = 0.97
_CALIBRATION_QUERIES = 256
_CALIBRATION_K = 10
# Calibration queries are stored vectors plus noise of this norm (cosine ≈ 0.7
# to their own point): as far from the data as a fresh query from the same
# neighbourhood, so the calibrated nprobe is not tuned on easy queries.
_CALIBRATION_NOISE = 1.0
# Float32 dot products of the same two vectors differ in the last bits between FAISS and numpy.
_TIE_TOLERANCE = 1e-5
_TRAIN_PER_LIST = 40  # FAISS warns below 39 training points per centroid
_TRAIN_ITERATIONS = 12


@dataclass(frozen=True)
class IndexPlan:
    """The kind of index and its parameters; stored in the file header."""

    kind: str = "flat"  # "flat" (exact) or "ivf" (IVF-Flat, approximate)
    nlist: int = 0
    nprobe: int = 0
    planned_for: int = 0  # the size the plan was made for

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict | None) -> "IndexPlan":
        return cls(**raw) if raw else cls()

    def describe(self) -> str:
        """A short human-readable form, e.g. ``ivf(nlist=2048, nprobe=24)``."""
        return "flat" if self.kind == "flat" else f"ivf(nlist={self.nlist}, nprobe={self.nprobe})"


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` vectors: a power of two near 2·√n (≈ 500 vectors per list at 1M).

    Never more lists than leave ``_TRAIN_PER_LIST`` training points each.
    """
    near = 2 ** round(math.log2(2 * math.sqrt(max(n, 1))))
    cap = 2 ** int(math.log2(max(n // _TRAIN_PER_LIST, 1)))
    return int(max(1, min(near, cap)))


def plan_for(n: int, flat_limit: int = FLAT_LIMIT) -> IndexPlan:
    """The plan for ``n`` vectors (``nprobe`` is filled in by calibration when built)."""
    if n < flat_limit:
        return IndexPlan("flat", planned_for=n)
    return IndexPlan("ivf", nlist=nlist_for(n), planned_for=n)


def needs_replan(plan: IndexPlan, n: int, flat_limit: int = FLAT_LIMIT) -> bool:
    """Whether ``n`` vectors call for another kind or another list count than ``plan``.

    Hysteresis keeps an index hovering around a boundary from flapping: an
    approximate index only goes back to flat below half the flat limit.
    """
    if plan.kind == "flat":
        return n >= flat_limit
    if n < flat_limit // 2:
        return True
    base = max(plan.planned_for, 1)
    return n > base * REPLAN_FACTOR or n < base / REPLAN_FACTOR


def new_flat(dim: int) -> faiss.Index:
    """An empty exact index keyed by external ids."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def build(plan: IndexPlan, dim: int, ids: np.ndarray, vectors: np.ndarray,
          seed: int = 1234) -> tuple[faiss.Index, IndexPlan]:
    """A filled FAISS index for ``plan`` and the plan with ``nprobe`` calibrated.

    ``vectors`` must be float32, L2-normalised, shape (len(ids), dim).
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if plan.kind == "flat":
        index = new_flat(dim)
        if ids.size:
            index.add_with_ids(vectors, ids)
        return index, plan
    nlist = min(plan.nlist, nlist_for(len(ids)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = _TRAIN_ITERATIONS
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    sample = min(len(ids), _TRAIN_PER_LIST * nlist)
    train = vectors if sample == len(ids) else vectors[np.sort(rng.choice(len(ids), sample, replace=False))]
    index.train(train)
    # A hash table from id to list position: lets remove_ids and reconstruct
    # find one id without scanning every list.
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.add_with_ids(vectors, ids)
    nprobe = calibrate_nprobe(index, ids, vectors, rng)
    index.nprobe = nprobe
    return index, IndexPlan("ivf", nlist=nlist, nprobe=nprobe, planned_for=len(ids))


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` ids that appears in the same row of ``found``."""
    hits = sum(len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) for f, t in zip(found, truth))
    return hits / max(1, int((truth >= 0).sum()))


def recall_with_ties(found_ids: np.ndarray, found_scores: np.ndarray, kth_exact: np.ndarray) -> float:
    """Mean share of each query's k results that score at least its exact k-th best score.

    Counting ids (:func:`recall_at`) would fault an answer that picks another of several records with the
    same vector at the cut-off; with many equal vectors (copies of one text) no ``nprobe`` could reach the
    target and calibration would scan every list. IVF-Flat's scores are exact, so a found id whose score
    reaches the exact k-th score is a true top-k answer.
    """
    k = found_ids.shape[1]
    hits = (found_ids >= 0) & (found_scores >= kth_exact[:, None] - _TIE_TOLERANCE)
    return float(hits.sum()) / max(1, k * len(found_ids))


def calibrate_nprobe(index: faiss.IndexIVF, ids: np.ndarray, vectors: np.ndarray, rng: np.random.Generator,
                     target: float = CALIBRATION_RECALL) -> int:
    """The smallest ``nprobe`` whose recall@10 against exact search (:func:`recall_with_ties`) reaches ``target``.

    Queries are stored vectors moved well off their own point (a query is
    never a copy of a stored vector), and their exact neighbours come from a
    brute-force product over all stored vectors.
    """
    n, dim = vectors.shape
    picks = rng.choice(n, min(_CALIBRATION_QUERIES, n), replace=False)
    noise = rng.standard_normal((len(picks), dim), dtype=np.float32) * (_CALIBRATION_NOISE / math.sqrt(dim))
    queries = vectors[picks] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = min(_CALIBRATION_K, n)
    kth_rows = _exact_top(queries, vectors, k)[:, -1]
    kth_exact = np.einsum("ij,ij->i", queries, vectors[kth_rows])

    def recall(nprobe: int) -> float:
        scores, got = index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=nprobe))
        return recall_with_ties(got, scores, kth_exact)

    lo, hi = 0, 1  # find a passing power of two, then the smallest passing value below it
    while hi < index.nlist and recall(hi) < target:
        lo, hi = hi, min(hi * 2, index.nlist)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if recall(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def _exact_top(queries: np.ndarray, vectors: np.ndarray, k: int, chunk: int = 100_000) -> np.ndarray:
    """Row numbers of the exact top ``k`` of each query (brute force, chunked to bound memory)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        s = queries @ vectors[start : start + chunk].T
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        best_s = np.hstack([best_s, np.take_along_axis(s, part, 1)])
        best_i = np.hstack([best_i, part + start])
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


def ivf_list(index: faiss.IndexIVF, lst: int) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the ids and vectors of one inverted list of an IVF-Flat index."""
    invlists = index.invlists
    size = invlists.list_size(lst)
    if not size:
        return np.zeros(0, dtype=np.int64), np.zeros((0, index.d), dtype=np.float32)
    ids = faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy()
    raw = faiss.rev_swig_ptr(invlists.get_codes(lst), size * invlists.code_size)
    return ids, raw.view(np.float32).reshape(size, index.d).copy()


def ivf_contents(index: faiss.IndexIVF, with_vectors: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """All (ids, vectors) an IVF-Flat index holds, list by list."""
    if not with_vectors:
        invlists = index.invlists
        parts = [faiss.rev_swig_ptr(invlists.get_ids(lst), invlists.list_size(lst)).copy()
                 for lst in range(index.nlist) if invlists.list_size(lst)]
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)), None
    ids, vecs = zip(*(ivf_list(index, lst) for lst in range(index.nlist))) if index.nlist else ((), ())
    return np.concatenate(ids), np.concatenate(vecs)
