"""Run files: TREC 6-column text (``topic Q0 shotId rank score tag``) and TRECVID XML submissions.

What the scorer uses from a TREC run is the topic, the shot and the score; the rank column
and the tag are ignored (sample_eval.pl orders by score). A run keeps, per topic, every line's
shot and score in file order, so duplicate lines stay visible (a later line's score wins).

The one order of shots everywhere: score descending, then shot id descending (byte order),
see :func:`ranked_shots`.

Strict reading (default) rejects a wrong field count, a non-numeric or non-finite score, an
empty file, a file starting with whitespace and binary data, naming file and line. ``lenient``
reads like sample_eval.pl: whole-file whitespace tokens six at a time (a short line shifts the
rest), a leading empty token when the file starts with whitespace, and Perl's numeric prefix
for scores ("abc" -> 0, "3x" -> 3).

TRECVID XML (``videoAdhocSearchResults``) is read the way NIST turns it into TREC lines: topic
"1" + tNum, shots ordered by seqNum; the derived scores (n, n-1, ..., 1 for n items) keep
that order.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from avsbench.data.atomic import atomic_write
from avsbench.data.textrecords import (
    PERL_WHITESPACE,
    RecordTokens,
    perl_number,
    read_file_bytes,
    split_records,
    topic_sort_key,
)
from avsbench.data.topics import qrels_topic_id
from avsbench.errors import InputFormatError

if TYPE_CHECKING:
    import pandas as pd

TREC_LAYOUT = "topic Q0 shotId rank score tag"
_NUMBER_CHARS = str.maketrans("", "", "0123456789+-.eE")


def ranked_shots(shots: Sequence[str], scores: Sequence[float]) -> list[tuple[str, float]]:
    """Distinct shots with their scores in scorer order: score descending, then shot id descending.

    ``shots``/``scores`` are a topic's lines in file order; for a shot listed more than once
    the later line's score counts (as in sample_eval.pl).
    """
    final = dict(zip(shots, scores))
    return [(shot, score) for score, shot in sorted(zip(final.values(), final), reverse=True)]


def scorer_order(shots: list[str], scores: list[float]) -> tuple[list[str], int]:
    """Shot ids in scorer order (as :func:`ranked_shots`) and the number of distinct shots.

    Returns ``shots`` itself (not a copy) when the lines are already in that order.
    """
    if len(set(shots)) == len(shots):
        if all(map(operator.gt, scores, scores[1:])):
            return shots, len(shots)
        pairs = zip(scores, shots)
    else:
        final = dict(zip(shots, scores))
        pairs = zip(final.values(), final)
    ranked = [shot for _, shot in sorted(pairs, reverse=True)]  # (score, shot) tuples: ties by shot id desc
    return ranked, len(ranked)


@dataclass
class TopicLines:
    """One topic's run lines in file order."""

    shots: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    @property
    def num_lines(self) -> int:
        return len(self.shots)

    def ranked(self) -> list[tuple[str, float]]:
        """Distinct shots in scorer order (see :func:`ranked_shots`)."""
        return ranked_shots(self.shots, self.scores)


class RunEntry(NamedTuple):
    """One result line as the scorer sees it."""

    topic: str
    shot: str
    score: float


@dataclass
class RunFile:
    """A run: topic id (qrels style, "1611") -> :class:`TopicLines`, topics in first-appearance order."""

    name: str
    topics: dict[str, TopicLines] = field(default_factory=dict)
    tag: str = "avsbench"
    path: str | None = None
    source_format: str = "trec"  # "trec" or "xml"

    def __len__(self) -> int:
        return sum(t.num_lines for t in self.topics.values())

    @property
    def topic_ids(self) -> list[str]:
        """Topics with at least one line, in numeric order."""
        return sorted((t for t, lines in self.topics.items() if lines.num_lines), key=topic_sort_key)

    def entries(self) -> Iterator[RunEntry]:
        """Every line, topic by topic in first-appearance order, lines in file order."""
        for topic, lines in self.topics.items():
            for shot, score in zip(lines.shots, lines.scores):
                yield RunEntry(topic, shot, score)

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, str, float]], name: str, tag: str | None = None) -> RunFile:
        """Build a run from ``(topic, shot, score)`` triples (e.g. a ranker's output)."""
        run = cls(name=name, tag=tag or name)
        for topic, shot, score in entries:
            lines = run.topics.get(topic)
            if lines is None:
                lines = run.topics[topic] = TopicLines()
            lines.shots.append(shot)
            lines.scores.append(float(score))
        return run

    @classmethod
    def read(cls, path: str | Path, *, lenient: bool = False) -> RunFile:
        """Read a TREC or TRECVID XML run (by content: XML starts with '<'); an XML file must hold one run."""
        runs = cls.read_all(path, lenient=lenient)
        if len(runs) != 1:
            raise InputFormatError(
                f"XML file holds {len(runs)} runs (videoAdhocSearchRunResult)", path=path, expected="one run; use RunFile.read_all"
            )
        return runs[0]

    @classmethod
    def read_all(cls, path: str | Path, *, lenient: bool = False) -> list[RunFile]:
        """Read every run of a file: one for a TREC file, one per ``videoAdhocSearchRunResult`` for XML."""
        data = read_file_bytes(path, "run")
        return cls.from_bytes(data, path, lenient=lenient)

    @classmethod
    def from_bytes(cls, data: bytes, path: str | Path = "<run>", *, lenient: bool = False) -> list[RunFile]:
        if data.lstrip(PERL_WHITESPACE)[:1] == b"<":
            return _read_xml(data, str(path), lenient)
        records = split_records(data, path, fields=6, what="run", layout=TREC_LAYOUT, lenient=lenient)
        return [_build_trec_run(records, Path(str(path)).name)]

    @classmethod
    def from_dict(cls, scores: Mapping[Any, Mapping[Any, Any]], name: str = "run", tag: str | None = None) -> RunFile:
        """A run from ``{topic: {shot: score}}``, e.g. ``RunFile.from_dict({"1701": {"shot1_1": 2.0}})``."""
        from avsbench.interop import run_from_dict

        return run_from_dict(scores, name, tag)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{topic: {shot: score}}`` (a later duplicate line's score wins, as in scoring)."""
        from avsbench.interop import run_to_dict

        return run_to_dict(self)

    @classmethod
    def from_dataframe(cls, frame: pd.DataFrame, name: str = "run", tag: str | None = None) -> RunFile:
        """A run from a frame with columns ``topic, shot, score`` (or ``query_id, doc_id, score``)."""
        from avsbench.interop import run_from_dataframe

        return run_from_dataframe(frame, name, tag)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per line: ``topic, shot, score``, in file order."""
        from avsbench.interop import run_to_dataframe

        return run_to_dataframe(self)

    def write(self, path: str | Path) -> None:
        """Write the run as TREC lines, atomically: topics in numeric order, shots in scorer order
        (score desc, shot id desc), ranks 1..n, one line per distinct shot (a later duplicate's score wins)."""
        for topic, lines in self.topics.items():
            bad = next((s for s in lines.scores if not math.isfinite(s)), None)
            if bad is not None:
                raise InputFormatError(f"cannot write non-finite score {bad!r} (topic {topic})", path=path)
        with atomic_write(path) as fh:
            for topic in self.topic_ids:
                for rank, (shot, score) in enumerate(self.topics[topic].ranked(), 1):
                    fh.write(f"{topic} Q0 {shot} {rank} {format_score(score)} {self.tag}\n")


def format_score(score: float) -> str:
    """Shortest text that reads back as the same float ("9999" for integral scores)."""
    if score.is_integer() and abs(score) < 2**53:
        return str(int(score))
    return repr(score)


def _parse_scores(records: RecordTokens, texts: list[str]) -> list[float]:
    if records.lenient:
        return list(map(perl_number, texts))
    expected = "a finite number such as 9999, 0.8731 or 4.7e-04"
    if "".join(texts).translate(_NUMBER_CHARS):  # a character no plain decimal number uses
        record = next(i for i, t in enumerate(texts) if t.translate(_NUMBER_CHARS))
        raise InputFormatError(f"score {texts[record]!r} is not a number", path=records.path, line=records.line_of(record), expected=expected)
    try:
        scores = list(map(float, texts))
    except ValueError:
        for i, t in enumerate(texts):
            try:
                float(t)
            except ValueError:
                raise InputFormatError(f"score {t!r} is not a number", path=records.path, line=records.line_of(i), expected=expected) from None
        raise
    if not all(map(math.isfinite, scores)):
        i = next(i for i, x in enumerate(scores) if not math.isfinite(x))
        raise InputFormatError(f"score {texts[i]!r} is out of range", path=records.path, line=records.line_of(i), expected=expected)
    return scores


def _build_trec_run(records: RecordTokens, name: str) -> RunFile:
    topic_col = records.column(0)
    shots = records.column(2)
    scores = _parse_scores(records, records.column(4))
    tags = records.column(5)
    run = RunFile(name=name, tag=tags[0] if tags else name, path=records.path, source_format="trec")
    start = 0
    for topic, block in groupby(topic_col):
        end = start + len(list(block))
        lines = run.topics.get(topic)
        if lines is None:
            lines = run.topics[topic] = TopicLines()
        lines.shots.extend(shots[start:end])
        lines.scores.extend(scores[start:end])
        start = end
    return run


RESULTS_TAG = "videoAdhocSearchResults"
RUN_TAG = "videoAdhocSearchRunResult"
TOPIC_TAG = "videoAdhocSearchTopicResult"
ITEM_TAG = "item"


def _xml_int(element, attribute: str, path: str, expected: str) -> int:
    value = element.get(attribute)
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()):
        problem = "missing" if value is None else f"{value!r} is not a whole number"
        raise InputFormatError(f"<{element.tag}> attribute {attribute} {problem}", path=path, line=element.sourceline, expected=expected)
    return int(text)


def _unexpected(element, path: str, expected: str) -> InputFormatError:
    return InputFormatError(f"unexpected element <{element.tag}>", path=path, line=element.sourceline, expected=expected)


def _read_xml(data: bytes, path: str, lenient: bool) -> list[RunFile]:
    from lxml import etree  # only XML runs need lxml

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise InputFormatError(f"XML not well-formed: {exc.msg}", path=path, line=exc.lineno or None) from None
    if root.tag == RUN_TAG:
        run_elements = [root]
    elif root.tag == RESULTS_TAG:
        run_elements = []
        for child in root:
            if child.tag != RUN_TAG:
                raise _unexpected(child, path, f"<{RUN_TAG}> elements")
            run_elements.append(child)
    else:
        raise _unexpected(root, path, f"root element <{RESULTS_TAG}>")
    if not run_elements:
        raise InputFormatError(f"no <{RUN_TAG}> in the XML file", path=path, line=root.sourceline)
    base = Path(path).name
    runs = []
    for element in run_elements:
        tag = element.get("pid") or "xml"
        name = base if len(run_elements) == 1 else f"{base}:{tag}_{element.get('priority', len(runs) + 1)}"
        runs.append(_xml_run(element, path, name, tag, lenient))
    return runs


def _xml_run(run_element, path: str, name: str, tag: str, lenient: bool) -> RunFile:
    per_topic: dict[str, list[tuple[int, int, str]]] = {}
    for topic_element in run_element:
        if topic_element.tag != TOPIC_TAG:
            raise _unexpected(topic_element, path, f"<{TOPIC_TAG}> elements")
        topic = qrels_topic_id(_xml_int(topic_element, "tNum", path, "the plain topic number, e.g. 611"))
        if topic in per_topic and not lenient:
            raise InputFormatError(f"topic {topic_element.get('tNum')} appears twice in one run", path=path, line=topic_element.sourceline)
        items = per_topic.setdefault(topic, [])
        seen: dict[int, int] = {}
        for item in topic_element:
            if item.tag != ITEM_TAG:
                raise _unexpected(item, path, f"<{ITEM_TAG} seqNum=... shotId=.../>")
            seq = _xml_int(item, "seqNum", path, "the rank 1, 2, ...")
            shot = (item.get("shotId") or "").strip()
            if not shot:
                raise InputFormatError("<item> without shotId", path=path, line=item.sourceline)
            if seq in seen and not lenient:
                raise InputFormatError(f"seqNum {seq} used twice in topic {topic_element.get('tNum')} (first on line {seen[seq]})", path=path, line=item.sourceline)
            seen.setdefault(seq, item.sourceline)
            items.append((seq, len(items), shot))
    run = RunFile(name=name, tag=tag, path=path, source_format="xml")
    for topic, items in per_topic.items():
        items.sort()
        n = len(items)
        run.topics[topic] = TopicLines([shot for _, _, shot in items], [float(n - i) for i in range(n)])
    return run


SCORE_DECIMALS = 10
_RUN_ID_RE = re.compile(r"[^A-Za-z0-9_.\-]+")


def safe_run_id(text: str) -> str:
    """A run tag without whitespace or odd characters (``my model`` -> ``my_model``): one field of
    a TREC line, never a line break. Every command that writes a run tag cleans it here."""
    cleaned = _RUN_ID_RE.sub("_", text).strip("_.")
    return cleaned or "avsbench"


def strictly_decreasing_scores(scores: Sequence[float]) -> list[str]:
    """Scores (sorted non-increasing) as decimal strings with :data:`SCORE_DECIMALS` decimals that
    strictly decrease: where two consecutive scores are equal at that precision (ties, ordered by
    shot id descending like the scorer does), the lower one is written 1e-10 below the one above,
    so a reader ordering by score gets exactly this order. The adjustment is at most 1e-10 per tied
    shot, far below any score difference that matters."""
    scale = 10**SCORE_DECIMALS
    out: list[str] = []
    previous: int | None = None
    for value in scores:
        q = round(float(value) * scale)
        if previous is not None and q >= previous:
            q = previous - 1
        previous = q
        sign = "-" if q < 0 else ""
        whole, frac = divmod(abs(q), scale)
        out.append(f"{sign}{whole}.{frac:0{SCORE_DECIMALS}d}")
    return out
