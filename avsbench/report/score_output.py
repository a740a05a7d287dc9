"""Renderers of scored runs (:class:`avsbench.eval.scoring.ScoredRun`) for ``avsbench score``.

Registered in :mod:`avsbench.report.formats`. Only the ``table`` rendering imports rich; the
machine formats use the standard library.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from avsbench.data.topics import topic_text
from avsbench.eval.sample_eval import DEFAULT_CUTOFFS, RECALL_LEVELS, format_sample_eval
from avsbench.report.formats import RenderOptions
from avsbench.report.tables import Column, ReportTable, Row

if TYPE_CHECKING:
    from avsbench.eval.scoring import ScoredRun

# every measure the scorer reports, under sample_eval's names, in its order
SCORE_MEASURES: tuple[str, ...] = (
    "infAP",
    "infNDCG",
    *(f"iprec@rec{level:4.2f}" for level in RECALL_LEVELS),
    *(f"iP{c}" for c in DEFAULT_CUTOFFS),
    "inum_rel_ret",
    "inum_rel",
    "num_ret",
)


def pick_measures(measures: Mapping[str, float | int], chosen: Sequence[str]) -> dict[str, float | int]:
    """``measures`` limited to ``chosen`` in the order given (all of them when ``chosen`` is empty)."""
    if not chosen:
        return dict(measures)
    return {name: measures[name] for name in chosen if name in measures}


def _long_rows(
    scored: Sequence[ScoredRun], options: RenderOptions
) -> Iterator[tuple[ScoredRun, str, str, float | int]]:
    """(run, topic, measure, value) per value: each run's topics (with ``per_topic``), then "all"."""
    for s in scored:
        if options.per_topic:
            for topic_id, t in s.result.per_topic.items():
                for name, value in pick_measures(t.measures(), options.measures).items():
                    yield s, topic_id, name, value
        for name, value in pick_measures(s.result.measures(), options.measures).items():
            yield s, "all", name, value


def render_sample_eval(scored: Sequence[ScoredRun], options: RenderOptions) -> str:
    """NIST's text per run; with ``measures`` only the lines of those measures."""
    text = "".join(format_sample_eval(s.result, options.per_topic) for s in scored)
    if not options.measures:
        return text
    chosen = set(options.measures)
    return "".join(line for line in text.splitlines(keepends=True) if line.split("\t", 1)[0] in chosen)


def _trec_eval_value(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def render_trec_eval(scored: Sequence[ScoredRun], options: RenderOptions) -> str:
    """trec_eval's long form: ``measure<TAB>topic<TAB>value`` (one tab each), a ``runid`` and
    ``num_q`` line heading each run, per-topic lines (with ``per_topic``) before the ``all`` ones."""
    out: list[str] = []
    current: ScoredRun | None = None
    for s, topic, name, value in _long_rows(scored, options):
        if s is not current:
            current = s
            out += [f"runid\tall\t{s.name}\n", f"num_q\tall\t{s.result.num_topics}\n"]
        out.append(f"{name}\t{topic}\t{_trec_eval_value(value)}\n")
    return "".join(out)


def render_jsonl(scored: Sequence[ScoredRun], options: RenderOptions) -> str:
    """One JSON object per value: run, year, topic ("all" for the run's means), measure, value."""
    lines = [
        json.dumps(
            {"run": s.name, "year": s.year.key if s.year else None, "topic": topic, "measure": name, "value": value}
        )
        for s, topic, name, value in _long_rows(scored, options)
    ]
    return "".join(line + "\n" for line in lines)


def render_json(scored: Sequence[ScoredRun], options: RenderOptions) -> str:
    """``{"runs": [...]}`` with every run's full-precision result (measures limited by ``measures``)."""
    runs = []
    for s in scored:
        record = s.to_dict(options.per_topic)
        if options.measures:
            record["summary"] = pick_measures(record["summary"], options.measures)
            for topic_id, values in record.get("per_topic", {}).items():
                record["per_topic"][topic_id] = {**pick_measures(values, options.measures), "in_run": values["in_run"]}
        runs.append(record)
    return json.dumps({"runs": runs}, indent=2) + "\n"


def _render_delimited(scored: Sequence[ScoredRun], options: RenderOptions, delimiter: str) -> str:
    """One row per run (topic "all") and, with ``per_topic``, per topic; floats at full precision."""
    measure_names = list(pick_measures(scored[0].result.measures(), options.measures)) if scored else []
    header = ["run", "year", "qrels", "topic", "text", *measure_names, "topics_scored", "topics_missing", "in_run"]
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    for s in scored:
        r = s.result
        year = s.year.key if s.year else ""
        summary = pick_measures(r.measures(), measure_names)
        writer.writerow(
            [s.name, year, s.qrels_path, "all", "", *summary.values(), len(r.scored_topics), len(r.missing_topics), ""]
        )
        if options.per_topic:
            for topic_id, t in r.per_topic.items():
                values = pick_measures(t.measures(), measure_names).values()
                writer.writerow([s.name, year, s.qrels_path, topic_id, topic_text(topic_id), *values, "", "", t.in_run])
    return buf.getvalue()


def render_csv(scored: Sequence[ScoredRun], options: RenderOptions) -> str:
    return _render_delimited(scored, options, ",")


def render_tsv(scored: Sequence[ScoredRun], options: RenderOptions) -> str:
    return _render_delimited(scored, options, "\t")


SCORE_COLUMNS = ("infAP", "infNDCG", "iP10", "iP100")  # the table's measures unless others are asked for


def _topic_label(topic_id: str) -> str:
    text = topic_text(topic_id)
    return f"{topic_id} {text}" if text else topic_id


def _score_columns(first: str, measures: Sequence[str]) -> list[Column]:
    columns = [
        Column(first, min_width=12, no_wrap=True, overflow="ellipsis", ratio=1),
        Column("year", min_width=4, no_wrap=True, missing=""),
    ]
    columns += [
        Column(m, "d" if m == "num_ret" else ".4f", "", min_width=max(6, len(m)), no_wrap=True) for m in measures
    ]
    columns += [Column(h, "d", "", min_width=len(h), no_wrap=True) for h in ("scored", "missing")]
    return columns


def _run_rows(s: ScoredRun, first: str, measures: Sequence[str], per_topic: bool) -> list[Row]:
    """The run's row, then (with ``per_topic``) a dimmed row per topic."""
    r = s.result
    summary = pick_measures(r.measures(), measures)
    year = s.year.key if s.year else "?"
    rows = [
        Row({first: s.name, "year": year, **summary, "scored": len(r.scored_topics), "missing": len(r.missing_topics)})
    ]
    if per_topic:
        items = list(r.per_topic.items())
        for i, (topic_id, t) in enumerate(items):
            label = "  " + _topic_label(topic_id) + ("" if t.in_run else " (absent: 0)")
            cells = {first: label, **pick_measures(t.measures(), measures)}
            rows.append(Row(cells, detail=True, end_section=i == len(items) - 1))
    return rows


def score_tables(
    scored: Sequence[ScoredRun],
    *,
    per_topic: bool = False,
    measures: Sequence[str] | None = None,
) -> list[ReportTable]:
    """One table per year: a row per run (``measures``, default :data:`SCORE_COLUMNS`; topics
    scored and missing); with ``per_topic`` each run row is followed by a row per topic (id and
    text of the bundled topics)."""
    measures = list(measures or SCORE_COLUMNS)
    by_year: dict[str, list[ScoredRun]] = {}
    for s in scored:
        by_year.setdefault(s.year.key if s.year else "?", []).append(s)
    first = "run / topic" if per_topic else "run"
    tables = []
    for year_key, runs in by_year.items():
        note = "scored / missing: qrels topics scored / absent from the run; qrels: " + ", ".join(
            sorted({s.qrels_path for s in runs})
        )
        if any(s.synthetic_qrels for s in runs):
            note += " (SYNTHETIC judgments of a generated collection)"
        rows = [row for s in runs for row in _run_rows(s, first, measures, per_topic)]
        tables.append(
            ReportTable(
                f"AVS {year_key}" if year_key != "?" else "AVS scores",
                _score_columns(first, measures),
                rows,
                [note],
                keys=2,
            )
        )
    return tables


def render_table(scored: Sequence[ScoredRun], options: RenderOptions) -> str:
    """One table per year (:func:`score_tables`), ``options.width`` columns wide."""
    from avsbench.report.tables import tables_text

    tables = score_tables(scored, per_topic=options.per_topic, measures=options.measures or None)
    return tables_text(tables, options.width, options.color)
