"""Where a model's CLIP text feature comes from: a precomputed BigFile or the model's CLIP text tower.

``--clip-text``:
- ``auto`` (the reference's rule): a precomputed text BigFile ``TextData/<feature>/`` of the
  collection wins when it has a row for every text; otherwise the feature is computed online
  (the reference also drops a precomputed feature that lacks one query id);
- ``online``: always the model's CLIP text tower (an error when the model holds none);
- ``precomputed``: always the BigFile (an error when it is missing or lacks an id).

Other precomputed text features (not CLIP) always come from their BigFiles. The chosen sources
are described in a JSON-ready record for provenance sidecars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsbench.data.bigfile import BigFile
from avsbench.errors import ConfigError, MissingDataError
from avsbench.model.clip_text_tokenizer import TRUNCATIONS, clean_text, default_tokenizer
from avsbench.model.text import TextPipeline

CLIP_TEXT_SOURCES = ("auto", "online", "precomputed")


@dataclass
class TextSources:
    """The BigFiles to read, the features to compute online (-> truncation) and what was chosen, per feature."""

    precomputed: dict[str, BigFile] = field(default_factory=dict)
    online: dict[str, str] = field(default_factory=dict)
    record: list[dict[str, Any]] = field(default_factory=list)


def _bigfile_coverage(path: Path, ids: Sequence[str]) -> tuple[BigFile | None, int]:
    """(the BigFile under ``path`` or None, how many of ``ids`` it lacks)."""
    if not path.is_dir():
        return None, len(ids)
    bigfile = BigFile(path)
    rows = bigfile.row_of
    return bigfile, sum(1 for i in ids if i not in rows)


def _precomputed_only(name: str, text_dir: Path, what: str) -> BigFile:
    path = text_dir / name
    if not path.is_dir():
        raise MissingDataError(
            f"the model's precomputed text feature {name!r} is missing",
            path=path,
            expected=f"a BigFile of {what} text features (or a model with its CLIP text tower and --clip-text online)",
        )
    return BigFile(path)


def _choose_clip(name: str, text_dir: Path, ids: Sequence[str], clip_text: str) -> tuple[BigFile | None, str]:
    """(BigFile to read or None for online, why) for the model's CLIP feature."""
    if clip_text == "online":
        return None, "--clip-text online"
    bigfile, lacking = _bigfile_coverage(text_dir / name, ids)
    if clip_text == "precomputed" or (bigfile is not None and lacking == 0):
        if bigfile is None:
            return _precomputed_only(name, text_dir, "topic"), ""
        return (
            bigfile,
            "--clip-text precomputed" if clip_text == "precomputed" else "auto: the BigFile covers every text",
        )
    if bigfile is None:
        return None, f"auto: no TextData/{name}/ BigFile"
    return (
        None,
        f"auto: TextData/{name}/ lacks {lacking} of the {len(ids)} texts (the reference then computes it online)",
    )


def plan_text_sources(
    pipeline: TextPipeline,
    text_dir: str | Path,
    texts: Sequence[str],
    ids: Sequence[str],
    *,
    clip_text: str = "auto",
    truncation: str = "reference",
    what: str = "topic",
) -> TextSources:
    """Decide, per precomputed text feature of the model, whether to read ``text_dir/<name>/`` or compute it online."""
    if clip_text not in CLIP_TEXT_SOURCES:
        raise ConfigError(f"unknown --clip-text {clip_text!r}", expected=" | ".join(CLIP_TEXT_SOURCES))
    if truncation not in TRUNCATIONS:
        raise ConfigError(f"unknown --clip-truncation {truncation!r}", expected=" | ".join(TRUNCATIONS))
    text_dir = Path(text_dir)
    online_feature = pipeline.online_clip_feature
    if clip_text == "online" and online_feature is None and pipeline.precomputed_features:
        raise ConfigError(
            "--clip-text online: the model holds no CLIP text tower",
            expected="a model imported with its CLIP weights (model import-laff, or --clip-weights)",
        )
    sources = TextSources()
    for name in pipeline.precomputed_features:
        if name != online_feature:
            sources.precomputed[name] = _precomputed_only(name, text_dir, what)
            sources.record.append(_bigfile_record(name, sources.precomputed[name], "not a CLIP feature of the model"))
            continue
        bigfile, why = _choose_clip(name, text_dir, ids, clip_text)
        if bigfile is not None:
            sources.precomputed[name] = bigfile
            sources.record.append(_bigfile_record(name, bigfile, why))
        else:
            _check_texts(texts, ids, what)
            sources.online[name] = truncation
            sources.record.append(_online_record(pipeline, name, texts, ids, truncation, why))
    return sources


def _check_texts(texts: Sequence[str], ids: Sequence[str], what: str) -> None:
    empty = [i for t, i in zip(texts, ids) if not clean_text(t)]
    if empty:
        raise ConfigError(f"empty {what} text for {what} {', '.join(empty[:10])}", expected=f"a {what} text to encode")


def _bigfile_record(name: str, bigfile: BigFile, why: str) -> dict[str, Any]:
    return {
        "feature": name,
        "source": "precomputed",
        "path": str(bigfile.path),
        "shape": [bigfile.nrows, bigfile.dim],
        "why": why,
    }


def _online_record(
    pipeline: TextPipeline, name: str, texts: Sequence[str], ids: Sequence[str], truncation: str, why: str
) -> dict[str, Any]:
    tower = pipeline.clip_tower
    assert tower is not None
    tokenizer = default_tokenizer(tower.dims.context)
    over = [i for t, i in zip(texts, ids) if len(tokenizer.encode(t)) + 2 > tower.dims.context]
    clip = pipeline.config.source.get("clip_text") or {}
    return {
        "feature": name,
        "source": "online",
        "why": why,
        "truncation": truncation,
        "weights": clip.get("weights", "the model's CLIP text tower"),
        "weights_sha256": clip.get("sha256"),
        "tower": tower.dims.to_dict(),
        "texts_over_context": over,
        "eot_kept_when_cut": truncation == "openai",
        "vector_cache": str(pipeline.clip_cache_dir) if pipeline.clip_cache_dir is not None else None,
    }
