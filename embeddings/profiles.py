"""What a model expects around its input: query and passage prefixes."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelProfile:
    """How to present text to one embedding model.

    Retrieval models trained asymmetrically (e5, bge) want a marker in front of
    queries and/or passages; symmetric models want none. Callers never add
    prefixes themselves: they say "query" or "passage" and the profile decides.
    """

    query_prefix: str = ""
    passage_prefix: str = ""

    def apply(self, texts: list[str], kind: str) -> list[str]:
        """Return ``texts`` with the prefix for ``kind`` ("query" or "passage")."""
        if kind not in ("query", "passage"):
            raise ValueError(f"unknown text kind: {kind}")
        prefix = self.query_prefix if kind == "query" else self.passage_prefix
        return [prefix + t for t in texts]


# Known families, matched on the lower-cased model name or path.
_KNOWN = (
    ("e5", ModelProfile("query: ", "passage: ")),
    ("bge-small-zh", ModelProfile("为这个句子生成表示以用于检索相关文章：", "")),
    ("bge-base-zh", ModelProfile("为这个句子生成表示以用于检索相关文章：", "")),
    ("bge-large-zh", ModelProfile("为这个句子生成表示以用于检索相关文章：", "")),
)


def profile_for(model_name: str, prompts: dict[str, str] | None = None) -> ModelProfile:
    """Pick the profile for a model.

    Prompts saved with a sentence-transformers model ("query"/"passage") win,
    since the model's author wrote them; otherwise the model family decides;
    an unknown model gets no prefixes.
    """
    prompts = prompts or {}
    if "query" in prompts or "passage" in prompts:
        return ModelProfile(prompts.get("query", ""), prompts.get("passage", prompts.get("document", "")))
    name = model_name.lower()
    for marker, profile in _KNOWN:
        if marker in name:
            return profile
    return ModelProfile()
