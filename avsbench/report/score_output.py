"""Renderers of scored runs (:class:`avsbench.eval.scoring.ScoredRun`) for ``avsbench score``.

Registered in :mod:`avsbench.report.formats`. Only the ``table`` renderer imports rich; the
machine formats use the standard library.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from avsbench.data.topics import all_topics, plain_topic_id
from avsbench.errors import UnknownIdError
from avsbench.eval.sample_eval import DEFAULT_CUTOFFS, RECALL_LEVELS, format_sample_eval
from avsbench.report.formats import RenderOptions

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


def _topic_text(topic_id: str, topics: Mapping[int, object]) -> str:
    try:
        topic = topics.get(plain_topic_id(topic_id))
    except UnknownIdError:
        return ""
    return getattr(topic, "text", "") if topic else ""


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
    topics = all_topics() if options.per_topic else {}
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
                writer.writerow(
                    [s.name, year, s.qrels_path, topic_id, _topic_text(topic_id, topics), *values, "", "", t.in_run]
                )
    return buf.getvalue()


def render_csv(scored: Sequence[ScoredRun], options: RenderOptions) -> str:
    return _render_delimited(scored, options, ",")


def render_tsv(scored: Sequence[ScoredRun], options: RenderOptions) -> str:
    return _render_delimited(scored, options, "\t")


def render_table(scored: Sequence[ScoredRun], options: RenderOptions) -> str:
    """One rich table per year (see :func:`avsbench.report.tables.score_tables`), as text."""
    from avsbench.report.tables import score_tables, tables_text

    topics = all_topics() if options.per_topic else None
    tables = score_tables(scored, per_topic=options.per_topic, topics=topics, measures=options.measures or None)
    return tables_text(tables, options.width, options.color)
