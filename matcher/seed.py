"""Load the illustrative seed data through the same import path a user uses."""
from __future__ import annotations

import os
from pathlib import Path

from .context import MatcherContext
from .importer import ImportReport, import_file

def _seed_dir() -> Path:
    """The seed folder: $MATCHER_SEED_DIR, else the checkout's, else ./seed_data (installed package)."""
    if os.environ.get("MATCHER_SEED_DIR"):
        return Path(os.environ["MATCHER_SEED_DIR"])
    beside = Path(__file__).resolve().parent.parent / "seed_data"
    return beside if beside.is_dir() else Path.cwd() / "seed_data"


SEED_DIR = _seed_dir()


def seed_files(seed_dir: Path = SEED_DIR) -> list[tuple[str, Path]]:
    """(kind, path) of every seed upload file, outcomes first so needs find them indexed."""
    files = []
    for kind in ("outcomes", "needs"):
        folder = seed_dir / kind
        files += [(kind, p) for p in sorted(folder.glob("*")) if p.suffix.lower() in (".xlsx", ".csv")]
    return files


def load_seed(ctx: MatcherContext, seed_dir: Path = SEED_DIR, on_file=None, on_progress=None) -> list[ImportReport]:
    """Import every seed file; loading twice changes nothing (the import is idempotent)."""
    reports = []
    for kind, path in seed_files(seed_dir):
        if on_file:
            on_file(kind, path)
        with ctx.sessions() as session:
            reports.append(import_file(ctx, session, path.read_bytes(), path.name, kind, on_progress=on_progress))
    return reports
