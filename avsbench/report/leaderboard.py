"""Render the published TRECVID AVS results (:mod:`avsbench.eval.leaderboard`) in every format
the ``leaderboard`` command offers (registered in :mod:`avsbench.report.formats`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from avsbench.eval.leaderboard import CONFIDENCE_LEVELS, LeaderboardEntry
from avsbench.report.formats import RenderOptions
from avsbench.report.tables import ReportTable, latex_tables, markdown_tables, tables_text


def leaderboard_table(entries: Sequence[LeaderboardEntry], title: str = "Published TRECVID AVS results") -> ReportTable:
    """The leaderboard entries as a table; sources become numbered notes."""
    sources: list[str] = []
    rows = []
    for e in entries:
        if e.source not in sources:
            sources.append(e.source)
        rows.append(
            {
                "year": e.year,
                "system": e.system,
                "run": e.run or "",
                "kind": e.kind,
                "category": e.category,
                "metric": e.metric,
                "value": e.value,
                "conf.": e.confidence,
                "source": f"[{sources.index(e.source) + 1}]",
            }
        )
    frame = pd.DataFrame(
        rows, columns=["year", "system", "run", "kind", "category", "metric", "value", "conf.", "source"]
    )
    levels = ", ".join(f"{k} = {v}" for k, v in CONFIDENCE_LEVELS.items())
    notes = [f"Confidence: {levels}."] + [f"[{i}] {source}" for i, source in enumerate(sources, 1)]
    return ReportTable.from_frame(title, frame, {"value": ".4f"}, notes, keys=2)


def _entry_records(entries: Sequence[LeaderboardEntry]) -> list[dict[str, object]]:
    return [e.as_dict() for e in entries]


def render_json(entries: Sequence[LeaderboardEntry], options: RenderOptions) -> str:
    return json.dumps(_entry_records(entries), indent=1, ensure_ascii=False) + "\n"


def render_jsonl(entries: Sequence[LeaderboardEntry], options: RenderOptions) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _entry_records(entries))


def render_csv(entries: Sequence[LeaderboardEntry], options: RenderOptions) -> str:
    frame = pd.DataFrame(_entry_records(entries), columns=list(LeaderboardEntry.__dataclass_fields__))
    return frame.to_csv(index=False, lineterminator="\n")


def render_markdown(entries: Sequence[LeaderboardEntry], options: RenderOptions) -> str:
    return markdown_tables([leaderboard_table(entries)])


def render_latex(entries: Sequence[LeaderboardEntry], options: RenderOptions) -> str:
    return latex_tables([leaderboard_table(entries)])


def render_table(entries: Sequence[LeaderboardEntry], options: RenderOptions) -> str:
    return tables_text([leaderboard_table(entries)], options.width, options.color)
