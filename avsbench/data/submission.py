"""Official TRECVID AVS submissions: write and validate ``videoAdhocSearchResults`` XML.

Two header eras, each with its own DTD shipped in ``avsbench/data/dtd/`` (written by us from
the documented format; never fetched from NIST's URL):

* 2016-2018 (IACC.3): ``<videoAdhocSearchRunResult trType class pid priority desc>``
* 2019+ (V3C1): the same plus ``task`` (M main, P progress) and ``novelty`` (C common, N novelty).

Items are written in the scorer's order (score descending, then shot id descending as bytes),
at most 1000 per topic, ``seqNum`` 1..n, ``tNum`` the plain topic number.

Run names follow NIST's convention ``<class>_<task>_<novelty>_<trType>_<pid>.<yy>_<priority>``
(2019+, e.g. ``F_M_C_D_VIREO.19_1``). For 2016-2018, whose header has no task and novelty,
avsbench drops those two fields: ``<class>_<trType>_<pid>.<yy>_<priority>`` (``F_D_RUCMM.18_1``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from avsbench.data.atomic import atomic_write_bytes
from avsbench.data.resources import v3c1_dropped_shots
from avsbench.data.runs import find_entities, first_line, ranked_shots, sniff_format
from avsbench.data.topics import V3C1, TopicSet, Year, get_year, plain_topic_id
from avsbench.errors import ConfigError, MissingDataError

MAX_ITEMS = 1000
ROOT_ELEMENT = "videoAdhocSearchResults"
RUN_ELEMENT = "videoAdhocSearchRunResult"
TOPIC_ELEMENT = "videoAdhocSearchTopicResult"
ITEM_ELEMENT = "item"
DTD_DIR = Path(__file__).with_name("dtd")

RUN_CLASSES = ("F", "M", "R")
TRAIN_TYPES = ("A", "D", "E", "F")
TASKS = ("M", "P")
NOVELTIES = ("C", "N")
PRIORITIES = tuple(range(1, 11))
FIRST_TASK_YEAR = 2019
V3C1_VIDEOS = 7475

_PID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
_SHOT_RE = re.compile(r"^shot(\d{5})_([1-9]\d*)$")
_INT_RE = re.compile(r"^[+-]?\d+$")  # what Java's Integer.parseInt accepts (ASCII)
_DTD_URL_RE = re.compile(r"/tv(\d{4})/dtds/videoAdhocSearchResults\.dtd$")
_XML_ILLEGAL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def dtd_url(dtd_year: int) -> str:
    """NIST's DOCTYPE system URL for a year's submissions."""
    return f"https://www-nlpir.nist.gov/projects/tv{dtd_year}/dtds/videoAdhocSearchResults.dtd"


def has_task_header(dtd_year: int) -> bool:
    """True from 2019 on, when the run header carries ``task`` and ``novelty``."""
    return dtd_year >= FIRST_TASK_YEAR


def dtd_path(dtd_year: int) -> Path:
    """The avsbench DTD for a year's header era."""
    era = "tv2019" if has_task_header(dtd_year) else "tv2016"
    return DTD_DIR / f"videoAdhocSearchResults.{era}.dtd"


def submission_topics(year: Year, task: str | None) -> TopicSet:
    """The topics a run must answer: the year's main topics, or the progress topics for task P."""
    if year.key == "progress":
        if task not in (None, "P"):
            raise ConfigError("the progress topics are submitted with task P", expected="--task P")
        return year.topics()
    if task == "P":
        if not has_task_header(year.xml_dtd_year):
            raise ConfigError(f"no progress task in {year.key}", expected="a year from 2019 on")
        return get_year("progress").topics()
    return year.topics()


@dataclass(frozen=True)
class SubmissionHeader:
    """The attributes of one ``videoAdhocSearchRunResult``."""

    pid: str
    priority: int
    run_class: str
    train_type: str
    desc: str
    task: str | None = None
    novelty: str | None = None

    def check(self, dtd_year: int) -> None:
        """Raise ConfigError if a value is not allowed for the year's header era."""
        if not _PID_RE.match(self.pid):
            raise ConfigError(f"bad participant id {self.pid!r}", expected="letters, digits, '_' or '-'")
        if self.priority not in PRIORITIES:
            raise ConfigError(f"bad priority {self.priority}", expected="1..10")
        if self.run_class not in RUN_CLASSES:
            raise ConfigError(f"bad run class {self.run_class!r}", expected="|".join(RUN_CLASSES))
        if self.train_type not in TRAIN_TYPES:
            raise ConfigError(f"bad training type {self.train_type!r}", expected="|".join(TRAIN_TYPES))
        if _XML_ILLEGAL_RE.search(self.desc) or not self.desc.strip():
            raise ConfigError("the run description must be non-empty text without control characters")
        if has_task_header(dtd_year):
            if self.task not in TASKS:
                raise ConfigError(f"bad or missing task {self.task!r} for {dtd_year}", expected="--task M|P")
            if self.novelty not in NOVELTIES:
                raise ConfigError(f"bad or missing novelty {self.novelty!r} for {dtd_year}", expected="--novelty C|N")
        elif self.task is not None or self.novelty is not None:
            raise ConfigError(
                f"the {dtd_year} header has no task or novelty", expected="no --task/--novelty before 2019"
            )

    def attributes(self, dtd_year: int) -> list[tuple[str, str]]:
        """Attributes in the order NIST's examples write them."""
        attrs = [("trType", self.train_type), ("class", self.run_class)]
        if has_task_header(dtd_year):
            attrs += [("task", str(self.task)), ("novelty", str(self.novelty))]
        return attrs + [("pid", self.pid), ("priority", str(self.priority)), ("desc", self.desc)]


def nist_run_name(header: SubmissionHeader, dtd_year: int) -> str:
    """NIST's run id: ``F_M_C_D_TEAM.19_1`` (2019+) or ``F_D_TEAM.18_1`` (2016-2018)."""
    yy = f"{dtd_year % 100:02d}"
    if has_task_header(dtd_year):
        fields = [header.run_class, str(header.task), str(header.novelty), header.train_type]
    else:
        fields = [header.run_class, header.train_type]
    return "_".join(fields) + f"_{header.pid}.{yy}_{header.priority}"


def shots_in_scorer_order(pairs: Iterable[tuple[str, float]]) -> list[str]:
    """Distinct shots in sample_eval's order: the later score of a repeated shot wins,
    then score descending and shot id descending (as bytes)."""
    pairs = list(pairs)
    return [shot for shot, _ in ranked_shots([p[0] for p in pairs], [p[1] for p in pairs])]


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def submission_xml(
    run: Mapping[str, Iterable[tuple[str, float]]],
    year: Year,
    header: SubmissionHeader,
    elapsed_time: int,
    *,
    dtd_year: int | None = None,
) -> bytes:
    """Build the XML of one run.

    ``run`` maps TREC-style topic ids ("1611") to (shot id, score) pairs in any order. Every
    run topic must belong to the submission's topic set; topics of the set that the run lacks
    get an empty result (the DTD allows it; :func:`validate_submission` does not complain).
    """
    dtd_year = dtd_year or year.xml_dtd_year
    header.check(dtd_year)
    if isinstance(elapsed_time, bool) or not isinstance(elapsed_time, int) or elapsed_time < 0:
        raise ConfigError(f"bad elapsed time {elapsed_time!r}", expected="whole seconds >= 0")
    topics = submission_topics(year, header.task)
    by_number: dict[int, Iterable[tuple[str, float]]] = {}
    for topic_id, pairs in run.items():
        number = plain_topic_id(topic_id)
        if number not in topics:
            raise ConfigError(
                f"run topic {topic_id} is not a topic of {topics.name}",
                expected=f"topics {topics.numbers[0]}-{topics.numbers[-1]}",
            )
        by_number[number] = pairs
    attrs = " ".join(f'{k}="{_attr(v)}"' for k, v in header.attributes(dtd_year))
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<!DOCTYPE {ROOT_ELEMENT} SYSTEM "{dtd_url(dtd_year)}">',
        f"<{ROOT_ELEMENT}>",
        f"<{RUN_ELEMENT} {attrs}>",
    ]
    for number in topics.numbers:
        lines.append(f'<{TOPIC_ELEMENT} tNum="{number}" elapsedTime="{elapsed_time}">')
        shots = shots_in_scorer_order(by_number.get(number, ()))[:MAX_ITEMS]
        lines.extend(f'<{ITEM_ELEMENT} seqNum="{i}" shotId="{_attr(s)}"/>' for i, s in enumerate(shots, 1))
        lines.append(f"</{TOPIC_ELEMENT}>")
    lines += [f"</{RUN_ELEMENT}>", f"</{ROOT_ELEMENT}>", ""]
    return "\n".join(lines).encode("ascii", "xmlcharrefreplace")


def write_submission(
    path: str | Path,
    run: Mapping[str, Iterable[tuple[str, float]]],
    year: Year,
    header: SubmissionHeader,
    elapsed_time: int,
    *,
    dtd_year: int | None = None,
) -> Path:
    """Write :func:`submission_xml` atomically to ``path``."""
    data = submission_xml(run, year, header, elapsed_time, dtd_year=dtd_year)
    atomic_write_bytes(path, data)
    return Path(path)


# ------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True, order=True, slots=True)
class Problem:
    """One thing wrong with a submission file: where, which check found it, what."""

    line: int
    check: str  # "xml", "dtd" or "nist"
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: [{self.check}] {self.message}"


def _int_value(text: str | None) -> int | None:
    if text is None or not _INT_RE.match(text):
        return None
    return int(text)


def _check_shot(shot: str, collection: str, shot_ids: Collection[str] | None, dropped: frozenset[str]) -> str | None:
    m = _SHOT_RE.match(shot)
    if not m:
        return f"malformed shotId {shot!r} (expected shot<5-digit video>_<shot number>, e.g. shot00008_16)"
    if collection == V3C1 and not 1 <= int(m.group(1)) <= V3C1_VIDEOS:
        return f"shotId {shot!r}: V3C1 video numbers are 00001-{V3C1_VIDEOS:05d}"
    if shot in dropped:
        return f"shotId {shot!r} was dropped from V3C1 by NIST"
    if shot_ids is not None and shot not in shot_ids:
        return f"shotId {shot!r} is not in the {collection} shot list"
    return None


def _dtd_year_of(system_url: str | None) -> int | None:
    m = _DTD_URL_RE.search(system_url or "")
    return int(m.group(1)) if m else None


def validate_submission(
    source: str | Path | bytes,
    *,
    year: Year | None = None,
    shot_ids: Collection[str] | Callable[[str], Collection[str]] | None = None,
) -> list[Problem]:
    """Check a submission (a file path or the XML bytes) against our DTD and NIST's content
    rules; return every problem, sorted by line. An empty list means the submission is valid.

    The DTD is chosen from the year (``year``, else the DOCTYPE URL's tvYYYY, else the header:
    a ``task`` attribute means the 2019+ era); it is never fetched. ``shot_ids``, when given,
    is the collection's shot list (or a function from the collection name to it) and every
    shot must be in it. The XML is read as a stream: each topic result is checked (DTD and
    NIST's rules) when it ends, then its items are dropped, so memory does not grow with the items.
    """
    collector = ProblemList()
    check_submission(source, collector, year=year, shot_ids=shot_ids)
    return sorted(collector.problems)


class ProblemList:
    """Where the checks put the problems they find: here, every one of them (in no order)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, problems: Iterable[Problem]) -> None:
        """Take some problems."""
        self.problems.extend(problems)

    def clear(self) -> None:
        """Forget the problems taken so far (a file found not well-formed has only its XML problems)."""
        self.problems.clear()


def check_submission(
    source: str | Path | bytes,
    collector: ProblemList,
    *,
    year: Year | None = None,
    shot_ids: Collection[str] | Callable[[str], Collection[str]] | None = None,
) -> None:
    """:func:`validate_submission` giving its problems to ``collector`` as they are found (unsorted), so
    that a collector keeping only some of them (a summary) keeps memory bounded on huge submissions."""
    data = _submission_bytes(source)
    not_xml = _not_xml_problem(data)
    if not_xml is not None:
        collector.add([not_xml])
        return
    entities = entity_problems(data)
    if entities:
        collector.add(entities)
        return
    _SubmissionCheck(data, year, shot_ids, collector).run()


def _submission_bytes(source: str | Path | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    path = Path(source)
    if not path.is_file():
        raise MissingDataError("submission file not found", path=path)
    return path.read_bytes()


def _not_xml_problem(data: bytes) -> Problem | None:
    """A problem saying what the file is when it is not XML at all (a TREC run, most often)."""
    kind = sniff_format(data)
    if kind == "xml":
        return None
    if kind == "trec":
        return Problem(
            1,
            "xml",
            "this is a TREC run file (topic Q0 shotId rank score tag), not a TRECVID XML submission; "
            "make the submission with: avsbench submit RUN --year ...",
        )
    shown = first_line(data)[:40].decode("utf-8", "replace")
    return Problem(1, "xml", f"not an XML file: it starts with {shown!r} (expected <?xml ...?> and <{ROOT_ELEMENT}>)")


def entity_problems(data: bytes) -> list[Problem]:
    """Entity declarations and references (other than the five predefined and character references):
    NIST's parser rejects them, so does avsbench, with the line of each."""
    return [
        Problem(line, "xml", f"entity {text} (entity declarations and references are not allowed)")
        for line, text in find_entities(data)
    ]


def _iterparse(data: bytes, events: tuple[str, ...]):
    """lxml's streaming parser over the bytes: no DTD loading, no network, no entity expansion."""
    import io

    from lxml import etree

    return etree.iterparse(
        io.BytesIO(data),
        events=events,
        load_dtd=False,
        no_network=True,
        resolve_entities=False,
        dtd_validation=False,
        huge_tree=False,
    )


def _any_run_has_task(data: bytes) -> bool:
    """Whether a run of the submission (a child of the root) has a ``task`` attribute (a pre-pass,
    needed only when neither the year nor the DOCTYPE tells the header era)."""
    from lxml import etree

    depth = 0
    try:
        for event, element in _iterparse(data, ("start", "end")):
            if event == "end":
                depth -= 1
                element.clear(keep_tail=False)
                continue
            if depth == 1 and element.tag == RUN_ELEMENT and element.get("task") is not None:
                return True
            depth += 1
    except etree.XMLSyntaxError:
        pass  # reported by the main pass
    return False


@dataclass
class _RunCheck:
    """What a run's topic checks need while its topics stream by."""

    line: int
    expected: TopicSet | None
    seen: dict[int, int]


class _SubmissionCheck:
    """One streaming pass over a submission: DOCTYPE and header when the root opens, run headers when
    a run opens, each topic result (DTD and NIST's rules) when it ends, then the skeleton left (root,
    runs, emptied topics) against the DTD once the document ends."""

    def __init__(self, data: bytes, year: Year | None, shot_ids, collector: ProblemList) -> None:
        self.data = data
        self.year = year
        self.shot_ids_source = shot_ids
        self.found = collector
        self.runs: list[_RunCheck] = []

    def run(self) -> None:
        """Give every problem of the submission to the collector (only the XML ones when it is not well-formed)."""
        from lxml import etree

        events = _iterparse(self.data, ("start", "end"))
        try:
            self._walk(events)
        except etree.XMLSyntaxError as exc:
            self.found.clear()
            self.found.add(_syntax_problems(events.error_log, exc))

    def _walk(self, events) -> None:
        stack: list = []
        for event, element in events:
            if event == "start":
                if not stack:
                    self._open_root(element)
                elif len(stack) == 1 and element.tag == RUN_ELEMENT:
                    self._open_run(element)
                stack.append(element)
                continue
            stack.pop()
            if len(stack) == 2 and element.tag == TOPIC_ELEMENT and stack[1].tag == RUN_ELEMENT:
                run = self.runs[-1]
                self.found.add(
                    _check_topic(element, run.expected, run.seen, self.collection, self.shot_ids, self.dropped)
                )
            if len(stack) == 1 and element.tag == RUN_ELEMENT:
                self._close_run(self.runs[-1])
            if stack and element.tag == TOPIC_ELEMENT:
                self._validate_and_empty(element)
            if not stack:
                self.found.add(self._dtd_problems(element).elements())

    def _open_root(self, root) -> None:
        """Choose the DTD and the year from the DOCTYPE and ``year``; resolve the shot list."""
        from lxml import etree

        docinfo = root.getroottree().docinfo
        self.dtd_year, year_problems = _header_year(docinfo, self.year, lambda: _any_run_has_task(self.data))
        self.found.add(year_problems)
        self.dtd = etree.DTD(str(dtd_path(self.dtd_year)))
        if self.year is None:
            try:
                self.year = get_year(self.dtd_year)
            except ConfigError:
                message = f"cannot tell the year of tv{self.dtd_year}: topics not checked (give --year)"
                self.found.add([Problem(root.sourceline or 1, "nist", message)])
        year = self.year
        self.dropped = v3c1_dropped_shots() if year is not None and year.collection == V3C1 else frozenset()
        self.collection = year.collection if year is not None else ""
        shot_ids = self.shot_ids_source
        if callable(shot_ids):
            shot_ids = shot_ids(self.collection) if self.collection else None
        if shot_ids is not None and not isinstance(shot_ids, (set, frozenset)):
            shot_ids = frozenset(shot_ids)  # membership tests for every item
        self.shot_ids = shot_ids

    def _open_run(self, run) -> None:
        problems, task = _run_header_problems(run, self.dtd_year)
        self.found.add(problems)
        expected: TopicSet | None = None
        if self.year is not None:
            try:
                expected = submission_topics(self.year, task if task in TASKS else None)
            except ConfigError as exc:
                self.found.add([Problem(run.sourceline or 0, "nist", exc.message)])
        self.runs.append(_RunCheck(run.sourceline or 0, expected, {}))

    def _close_run(self, run: _RunCheck) -> None:
        if run.expected is None:
            return
        missing = [number for number in run.expected.numbers if number not in run.seen]
        self.found.add(
            Problem(run.line, "nist", f"topic {number} of {run.expected.name} is missing") for number in missing
        )

    def _validate_and_empty(self, topic) -> None:
        """Check a topic result's subtree against the DTD, then drop its content. What the emptied element
        still shows (its attributes) is found again by the pass over the skeleton, so only the rest counts here."""
        found = self._dtd_problems(topic)
        del topic[:]
        topic.text = None
        if found:
            self.found.add((found - self._dtd_problems(topic)).elements())

    def _dtd_problems(self, element) -> Counter[Problem]:
        """The DTD's problems with an element's subtree (each problem with how many times it occurs)."""
        if self.dtd.validate(element):
            return Counter()
        return Counter(Problem(e.line, "dtd", e.message) for e in self.dtd.error_log.filter_from_errors())


def _syntax_problems(error_log, exc) -> list[Problem]:
    """The well-formedness problems of a parse that failed."""
    entries = list(error_log) or [exc]
    problems = []
    for e in entries:
        line = getattr(e, "line", None) or getattr(e, "lineno", 0) or 0
        problems.append(Problem(line, "xml", f"not well-formed XML: {getattr(e, 'message', None) or exc.msg}"))
    return sorted(problems)


def _header_year(docinfo, year: Year | None, any_run_has_task: Callable[[], bool]) -> tuple[int, list[Problem]]:
    """The DTD year (from ``year``, the DOCTYPE URL or the header) and the DOCTYPE's problems."""
    problems = []
    url_year = _dtd_year_of(docinfo.system_url)
    if docinfo.system_url is None:
        expected = dtd_url(year.xml_dtd_year if year else 2019)
        problems.append(Problem(1, "nist", f'no DOCTYPE (expected <!DOCTYPE {ROOT_ELEMENT} SYSTEM "{expected}">)'))
    elif url_year is None or docinfo.root_name != ROOT_ELEMENT:
        problems.append(
            Problem(
                1,
                "nist",
                f"unexpected DOCTYPE {docinfo.root_name} {docinfo.system_url!r} "
                "(expected NIST's videoAdhocSearchResults.dtd URL)",
            )
        )
    if year is not None:
        dtd_year = year.xml_dtd_year
        if url_year is not None and url_year != dtd_year and year.year is not None:
            problems.append(Problem(1, "nist", f"DOCTYPE is for tv{url_year}, expected tv{dtd_year}"))
    elif url_year is not None:
        dtd_year = url_year
    else:
        dtd_year = FIRST_TASK_YEAR if any_run_has_task() else FIRST_TASK_YEAR - 1
    return dtd_year, problems


def _run_header_problems(run, dtd_year: int) -> tuple[list[Problem], str | None]:
    """The run header's problems (NIST's rules on its attributes) and its task (2019+)."""
    problems: list[Problem] = []
    line = run.sourceline or 0

    def need(name: str, allowed: Iterable[str] | None) -> str | None:
        value = run.get(name)
        if value is None:
            problems.append(Problem(line, "nist", f"run attribute {name} is missing"))
        elif allowed is not None and value not in allowed:
            problems.append(
                Problem(line, "nist", f"run attribute {name}={value!r} (expected one of {'|'.join(allowed)})")
            )
        return value

    need("class", RUN_CLASSES)
    need("trType", TRAIN_TYPES)
    pid = need("pid", None)
    if pid is not None and not _PID_RE.match(pid):
        problems.append(Problem(line, "nist", f"pid {pid!r} (expected letters, digits, '_' or '-')"))
    need("priority", [str(p) for p in PRIORITIES])
    desc = need("desc", None)
    if desc is not None and not desc.strip():
        problems.append(Problem(line, "nist", "desc is empty"))
    task = None
    if has_task_header(dtd_year):
        task = need("task", TASKS)
        need("novelty", NOVELTIES)
    return problems, task


def _check_topic(
    topic, expected: TopicSet | None, seen: dict[int, int], collection: str, shot_ids, dropped
) -> list[Problem]:
    problems: list[Problem] = []
    line = topic.sourceline or 0
    tnum_text = topic.get("tNum")
    number = _int_value(tnum_text.strip() if tnum_text is not None else None)
    if tnum_text is None:
        pass  # reported by the DTD
    elif number is None:
        problems.append(Problem(line, "nist", f"tNum {tnum_text!r} is not an integer"))
    elif number in seen:
        problems.append(Problem(line, "nist", f"topic {number} repeated (first at line {seen[number]})"))
    else:
        seen[number] = line
        if expected is not None and number not in expected:
            problems.append(Problem(line, "nist", f"topic {number} is not a topic of {expected.name}"))
    elapsed = topic.get("elapsedTime")
    if elapsed is not None and _int_value(elapsed) is None:
        problems.append(Problem(line, "nist", f"elapsedTime {elapsed!r} is not an integer number of seconds"))
    elif elapsed is not None and int(elapsed) < 0:
        problems.append(Problem(line, "nist", f"elapsedTime {elapsed} is negative"))
    items = topic.findall(ITEM_ELEMENT)
    if len(items) > MAX_ITEMS:
        problems.append(Problem(line, "nist", f"topic {tnum_text} has {len(items)} items (at most {MAX_ITEMS})"))
    seqs: dict[int, int] = {}
    shots: dict[str, int] = {}
    for item in items:
        iline = item.sourceline or 0
        seq_text = item.get("seqNum")
        seq = _int_value(seq_text)
        if seq_text is not None:
            if seq is None or not 1 <= seq <= MAX_ITEMS:
                problems.append(Problem(iline, "nist", f"seqNum {seq_text!r} (expected an integer in 1..{MAX_ITEMS})"))
            elif seq in seqs:
                problems.append(
                    Problem(iline, "nist", f"seqNum {seq} repeated in topic {tnum_text} (first at line {seqs[seq]})")
                )
            else:
                seqs[seq] = iline
        shot = item.get("shotId")
        if shot is not None:
            bad = _check_shot(shot, collection, shot_ids, dropped)
            if bad:
                problems.append(Problem(iline, "nist", bad))
            elif shot in shots:
                problems.append(
                    Problem(iline, "nist", f"shotId {shot} repeated in topic {tnum_text} (first at line {shots[shot]})")
                )
            else:
                shots[shot] = iline
    return problems
