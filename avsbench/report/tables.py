"""Rich tables of scores.

Generic part: :class:`Column` / :class:`Row` / :func:`build_table` turn rows of values into a
``rich.table.Table`` (numbers right-aligned and formatted per column, section breaks, dimmed
detail rows). Score part: :func:`score_tables` renders :class:`avsbench.eval.scoring.ScoredRun`
results, one table per year.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

from avsbench.data.topics import Topic, plain_topic_id
from avsbench.errors import UnknownIdError

if TYPE_CHECKING:
    from avsbench.eval.scoring import ScoredRun


@dataclass(frozen=True)
class Column:
    """A table column: header, value format (``".4f"``; None: ``str``) and alignment."""

    header: str
    fmt: str | None = None
    justify: str = "left"
    min_width: int | None = None
    max_width: int | None = None
    no_wrap: bool = False
    overflow: str = "fold"  # or "ellipsis"
    ratio: int | None = None  # share of the width left over (the table then fills the console)

    def render(self, value: object) -> str:
        if value is None:
            return ""
        return format(value, self.fmt) if self.fmt and isinstance(value, (int, float)) else str(value)


@dataclass(frozen=True)
class Row:
    """Cells by column header; ``detail`` rows are dimmed; ``end_section`` draws a rule below."""

    cells: Mapping[str, object]
    detail: bool = False
    end_section: bool = False


@dataclass
class TableSpec:
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    caption: str | None = None


def build_table(spec: TableSpec) -> Table:
    """A ``rich`` table from a :class:`TableSpec`."""
    flexible = any(col.ratio for col in spec.columns)
    table = Table(title=spec.title, caption=spec.caption, box=box.SIMPLE_HEAD, header_style="bold", expand=flexible, pad_edge=False, collapse_padding=True)
    for col in spec.columns:
        table.add_column(col.header, justify=col.justify, min_width=col.min_width, max_width=col.max_width, no_wrap=col.no_wrap, overflow=col.overflow, ratio=col.ratio)
    for row in spec.rows:
        table.add_row(
            *(col.render(row.cells.get(col.header)) for col in spec.columns),
            style="dim" if row.detail else None,
            end_section=row.end_section,
        )
    return table


def print_tables(tables: Sequence[Table], console: Console | None = None) -> None:
    """Print tables one after another (to stdout unless a console is given)."""
    console = console or Console()
    for table in tables:
        console.print(table)


def tables_text(tables: Sequence[Table], width: int, color: bool = False) -> str:
    """The tables as text ``width`` columns wide (with ANSI styles when ``color``)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, color_system="auto" if color else None)
    print_tables(tables, console)
    return buffer.getvalue()


SCORE_COLUMNS = ("infAP", "infNDCG", "iP10", "iP100")


def _topic_label(topic_id: str, topics: Mapping[int, Topic]) -> str:
    try:
        topic = topics.get(plain_topic_id(topic_id))
    except UnknownIdError:
        topic = None
    return f"{topic_id} {topic.text}" if topic else topic_id


def _measure_column(name: str) -> Column:
    return Column(name, "d" if name == "num_ret" else ".4f", "right", min_width=max(6, len(name)), no_wrap=True)


def score_tables(
    scored: Sequence[ScoredRun], *, per_topic: bool = False, topics: Mapping[int, Topic] | None = None,
    measures: Sequence[str] | None = None,
) -> list[Table]:
    """One table per year: a row per run (``measures``, default infAP, infNDCG, iP10, iP100; topics
    scored and missing); with ``per_topic`` each run row is followed by a row per topic (id and
    text from ``topics``)."""
    measures = list(measures or SCORE_COLUMNS)
    by_year: dict[str, list[ScoredRun]] = {}
    for s in scored:
        by_year.setdefault(s.year.key if s.year else "?", []).append(s)
    first = "run / topic" if per_topic else "run"
    columns = [Column(first, min_width=12, no_wrap=True, overflow="ellipsis", ratio=1), Column("year", min_width=4, no_wrap=True)]
    columns += [_measure_column(m) for m in measures]
    columns += [Column(h, "d", "right", min_width=len(h), no_wrap=True) for h in ("scored", "missing")]
    tables = []
    for year_key, runs in by_year.items():
        qrels = sorted({s.qrels_path for s in runs})
        synthetic = any(s.synthetic_qrels for s in runs)
        title = f"AVS {year_key}" if year_key != "?" else "AVS scores"
        caption = "scored / missing: qrels topics scored / absent from the run; qrels: " + ", ".join(qrels)
        if synthetic:
            caption += " (SYNTHETIC judgments of a generated collection)"
        spec = TableSpec(title, columns, caption=caption)
        for s in runs:
            r = s.result
            summary = {m: r.measures().get(m) for m in measures}
            spec.rows.append(
                Row(
                    {first: s.name, "year": year_key, **summary,
                     "scored": len(r.scored_topics), "missing": len(r.missing_topics)}
                )
            )
            if per_topic:
                items = list(r.per_topic.items())
                for i, (topic_id, t) in enumerate(items):
                    label = "  " + _topic_label(topic_id, topics or {}) + ("" if t.in_run else " (absent: 0)")
                    spec.rows.append(
                        Row(
                            {first: label, **{m: t.measures().get(m) for m in measures}},
                            detail=True,
                            end_section=i == len(items) - 1,
                        )
                    )
        tables.append(build_table(spec))
    return tables
