"""Conversions between avsbench's records and the forms other IR tools and pandas use.

- pandas: a run as a long frame (``topic, shot, score``), qrels as a frame
  (``topic, shot, stratum, judgment``), results per topic x measure (long or wide);
- plain dicts: ``{topic: {shot: score}}`` (what ranx and ir_measures accept);
- ir_measures-style named tuples: :class:`Qrel`, :class:`ScoredDoc` in, :class:`Metric` out
  (same field names, so ``ir_measures.Qrel`` and ``ir_measures.ScoredDoc`` objects work too);
- ranx ``Run`` / ``Qrels`` objects, only where ranx is installed (it is not a dependency).

Stratified sampled qrels (NIST's AVS judgments: stratum per shot, -1 for shots not sampled) are
what inferred measures need. ir_measures and ranx tuples carry no stratum: qrels going out lose
it (unsampled shots are left out), and qrels coming in form one fully judged stratum, on which
infAP is plain AP over the judged shots. See docs/python.md.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Iterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from avsbench.data.qrels import Qrels
from avsbench.data.runs import RunFile
from avsbench.errors import InputFormatError, MissingExtraError

if TYPE_CHECKING:
    import pandas as pd

    from avsbench.eval.sample_eval import EvalResult

RUN_COLUMNS = ("topic", "shot", "score")
QRELS_COLUMNS = ("topic", "shot", "stratum", "judgment")
# other tools' column names for the same things
COLUMN_ALIASES = {"query_id": "topic", "q_id": "topic", "qid": "topic", "doc_id": "shot", "relevance": "judgment"}
SINGLE_STRATUM = "1"  # the stratum of qrels that come without strata (fully judged)


class Qrel(NamedTuple):
    """One judgment, as ir_measures names it (``iteration`` is TREC's unused second column)."""

    query_id: str
    doc_id: str
    relevance: int
    iteration: str = "0"


class ScoredDoc(NamedTuple):
    """One run line, as ir_measures names it."""

    query_id: str
    doc_id: str
    score: float


class Metric(NamedTuple):
    """One measure of one topic, as ir_measures names it (``measure`` is sample_eval's name)."""

    query_id: str
    measure: str
    value: float


class QrelsRecord(NamedTuple):
    """One line of a stratified qrels file (``topic 0 shot stratum judgment``)."""

    topic: str
    shot: str
    stratum: str
    judgment: int


# --- runs ---------------------------------------------------------------------------------------


def _check_score(score: Any, where: str, path: str) -> float:
    try:
        value = float(score)
    except (TypeError, ValueError):
        message = f"{where}: score {score!r} is not a number"
        raise InputFormatError(message, path=path, expected="a finite number") from None
    if not math.isfinite(value):
        raise InputFormatError(f"{where}: score {score!r} is not finite", path=path, expected="a finite number")
    return value


def run_from_dict(scores: Mapping[Any, Mapping[Any, Any]], name: str = "run", tag: str | None = None) -> RunFile:
    """A run from ``{topic: {shot: score}}`` (ranx's and ir_measures' dict form)."""
    entries = []
    for topic, shots in scores.items():
        for shot, score in shots.items():
            entries.append((str(topic), str(shot), _check_score(score, f"topic {topic}, shot {shot}", "<dict>")))
    return RunFile.from_entries(entries, name=name, tag=tag)


def run_to_dict(run: RunFile) -> dict[str, dict[str, float]]:
    """``{topic: {shot: score}}``, topics and shots in file order; a later duplicate's score wins (as in scoring)."""
    out: dict[str, dict[str, float]] = {}
    for entry in run.entries():
        out.setdefault(entry.topic, {})[entry.shot] = entry.score
    return out


def _rename_columns(frame: pd.DataFrame, required: Iterable[str], what: str) -> pd.DataFrame:
    aliases = {k: v for k, v in COLUMN_ALIASES.items() if k in frame.columns and v not in frame.columns}
    frame = frame.rename(columns=aliases)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputFormatError(
            f"{what} frame lacks column(s) {', '.join(missing)} (has {', '.join(map(str, frame.columns))})",
            path="<DataFrame>",
            expected="columns " + ", ".join(required),
        )
    return frame


def run_from_dataframe(frame: pd.DataFrame, name: str = "run", tag: str | None = None) -> RunFile:
    """A run from a frame with columns ``topic, shot, score`` (or ``query_id, doc_id, score``), rows in run order."""
    frame = _rename_columns(frame, RUN_COLUMNS, "run")
    entries = []
    for row, (topic, shot, score) in enumerate(zip(frame["topic"], frame["shot"], frame["score"])):
        entries.append((str(topic), str(shot), _check_score(score, f"row {row}", "<DataFrame>")))
    return RunFile.from_entries(entries, name=name, tag=tag)


def run_to_dataframe(run: RunFile) -> pd.DataFrame:
    """One row per run line (``topic, shot, score``) in file order."""
    import pandas as pd

    return pd.DataFrame(list(run.entries()), columns=list(RUN_COLUMNS))


def run_from_scored_docs(docs: Iterable[Any], name: str = "run", tag: str | None = None) -> RunFile:
    """A run from ir_measures-style ``ScoredDoc(query_id, doc_id, score)`` tuples (or any such objects)."""
    entries = []
    for row, doc in enumerate(docs):
        topic, shot, score = (doc.query_id, doc.doc_id, doc.score) if hasattr(doc, "query_id") else tuple(doc)[:3]
        entries.append((str(topic), str(shot), _check_score(score, f"scored doc {row}", "<ScoredDoc>")))
    return RunFile.from_entries(entries, name=name, tag=tag)


def run_to_scored_docs(run: RunFile) -> Iterator[ScoredDoc]:
    """Every run line as a :class:`ScoredDoc`, in file order."""
    for entry in run.entries():
        yield ScoredDoc(entry.topic, entry.shot, entry.score)


# --- qrels --------------------------------------------------------------------------------------


def _judgment_text(value: Any, row: int) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer():
        raise InputFormatError(
            f"qrels record {row}: judgment {value!r} is not an integer",
            path="<records>",
            expected="1 (relevant), 0 (not relevant) or -1 (not sampled)",
        )
    return str(int(number))


def qrels_from_records(records: Iterable[Any], path: str = "<records>") -> Qrels:
    """Qrels from ``(topic, shot, stratum, judgment)`` tuples or :class:`QrelsRecord` objects.

    They are read exactly as the lines ``topic 0 shot stratum judgment`` of a qrels file would be.
    """
    lines = []
    for row, record in enumerate(records):
        topic, shot, stratum, judgment = tuple(record)
        fields = [str(topic), str(shot), str(stratum)]
        if any(not field or field.split() != [field] for field in fields):
            raise InputFormatError(
                f"qrels record {row}: {tuple(record)!r} has an empty field or whitespace in a field",
                path=path,
                expected="topic, shot and stratum without whitespace",
            )
        lines.append(f"{fields[0]} 0 {fields[1]} {fields[2]} {_judgment_text(judgment, row)}\n")
    return Qrels.from_bytes("".join(lines).encode(), path)


def qrels_to_records(qrels: Qrels) -> Iterator[QrelsRecord]:
    """One :class:`QrelsRecord` per judged shot (the last record of a shot, as the scorer reads it)."""
    for topic in qrels.topic_ids:
        table = qrels.topics[topic]
        for shot, judgment in table.judgment.items():
            yield QrelsRecord(topic, shot, table.stratum[shot], int(judgment))


def qrels_to_dataframe(qrels: Qrels) -> pd.DataFrame:
    """One row per judged shot: ``topic, shot, stratum, judgment``."""
    import pandas as pd

    return pd.DataFrame(list(qrels_to_records(qrels)), columns=list(QRELS_COLUMNS))


def qrels_from_dataframe(frame: pd.DataFrame) -> Qrels:
    """Qrels from a frame with ``topic, shot, stratum, judgment`` (without ``stratum``: one fully judged stratum)."""
    frame = _rename_columns(frame, ("topic", "shot", "judgment"), "qrels")
    strata = frame["stratum"] if "stratum" in frame.columns else [SINGLE_STRATUM] * len(frame)
    return qrels_from_records(zip(frame["topic"], frame["shot"], strata, frame["judgment"]), path="<DataFrame>")


def qrels_from_ir_measures(qrels: Iterable[Any]) -> Qrels:
    """Qrels from ir_measures-style ``Qrel(query_id, doc_id, relevance)``: one fully judged stratum.

    Without strata, inferred measures cannot be estimated: infAP is then AP over the judged shots.
    """
    records = []
    for qrel in qrels:
        if hasattr(qrel, "query_id"):
            topic, shot, relevance = qrel.query_id, qrel.doc_id, qrel.relevance
        else:
            topic, shot, relevance = tuple(qrel)[:3]
        records.append((topic, shot, SINGLE_STRATUM, relevance))
    return qrels_from_records(records, path="<Qrel>")


def qrels_to_ir_measures(qrels: Qrels) -> Iterator[Qrel]:
    """The sampled judgments as ir_measures-style :class:`Qrel` (strata dropped, unsampled -1 shots left out)."""
    for record in qrels_to_records(qrels):
        if record.judgment >= 0:
            yield Qrel(record.topic, record.shot, record.judgment)


def qrels_to_dict(qrels: Qrels) -> dict[str, dict[str, int]]:
    """``{topic: {shot: judgment}}`` of the sampled judgments (ranx's dict form; strata dropped)."""
    out: dict[str, dict[str, int]] = {}
    for qrel in qrels_to_ir_measures(qrels):
        out.setdefault(qrel.query_id, {})[qrel.doc_id] = qrel.relevance
    return out


# --- results ------------------------------------------------------------------------------------


def result_to_metrics(result: EvalResult) -> Iterator[Metric]:
    """Every per-topic measure as an ir_measures-style :class:`Metric`, topics in numeric order."""
    for topic, topic_result in result.per_topic.items():
        for measure, value in topic_result.measures().items():
            yield Metric(topic, measure, float(value))


def result_to_dataframe(result: EvalResult, shape: str = "long") -> pd.DataFrame:
    """Per-topic measures: ``long`` (run, topic, measure, value) or ``wide`` (a row per topic, a column per measure)."""
    import pandas as pd

    if shape not in ("long", "wide"):
        raise ValueError(f"shape must be 'long' or 'wide', got {shape!r}")
    if shape == "wide":
        rows = {topic: {**r.measures(), "in_run": r.in_run} for topic, r in result.per_topic.items()}
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "topic"
        return frame
    return pd.DataFrame(
        [(result.run_name, m.query_id, m.measure, m.value) for m in result_to_metrics(result)],
        columns=["run", "topic", "measure", "value"],
    )


# --- ranx ---------------------------------------------------------------------------------------


def _ranx() -> ModuleType:
    try:
        return importlib.import_module("ranx")
    except ModuleNotFoundError as exc:
        if exc.name != "ranx":
            raise
        raise MissingExtraError("this needs ranx (not installed; optional): pip install ranx") from None


def to_ranx_run(run: RunFile) -> Any:
    """A ``ranx.Run`` of ``run`` (needs ranx)."""
    return _ranx().Run(run_to_dict(run), name=run.name)


def to_ranx_qrels(qrels: Qrels) -> Any:
    """A ``ranx.Qrels`` of the sampled judgments (strata dropped; needs ranx)."""
    return _ranx().Qrels(qrels_to_dict(qrels))


def from_ranx_run(ranx_run: Any, name: str | None = None) -> RunFile:
    """A :class:`RunFile` from a ``ranx.Run`` (or anything with ``to_dict()``)."""
    return run_from_dict(ranx_run.to_dict(), name=name or getattr(ranx_run, "name", None) or "run")


def from_ranx_qrels(ranx_qrels: Any) -> Qrels:
    """Qrels from a ``ranx.Qrels``: one fully judged stratum (see the module notes)."""
    records = [(q, d, SINGLE_STRATUM, rel) for q, docs in ranx_qrels.to_dict().items() for d, rel in docs.items()]
    return qrels_from_records(records, path="<ranx.Qrels>")
