"""An exact port of NIST's ``sample_eval.pl`` (TRECVID AVS edition): infAP, infNDCG, iP@k, 11-point iprec@rec.

Written from ``shared/docs/sample_eval.md``. Every quirk of the reference is kept by default:
order by score with ties broken by descending shot id, rank column ignored, a duplicate line's
later score wins, only the first ``max_results`` (1000) distinct shots count, AP rescaled by
R-hat / 1000 when R-hat > 1000, the epsilon terms 0.00001 / 0.00003, one recall level per rank
in the 11-point interpolation, and means over the topics present in both run and qrels.

Bit-exactness: each expression is evaluated in the reference's order (left to right), sums
over strata run in ascending string order, means over topics in numeric order, the 11-point
buckets and ``inum_rel all`` in string order. The per-rank pass is vectorised with numpy:
per-stratum counters are cumulative sums (exact integers) and every float is produced by the
same IEEE operations, in the same order, as the scalar loop; sums along the ranking (SAP, DCG
gains) are accumulated sequentially.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from avsbench.data.qrels import Qrels, QrelsTopic, discount_table
from avsbench.data.runs import RunFile, TopicLines, distinct_shot_count
from avsbench.data.textrecords import topic_sort_key
from avsbench.errors import ConfigError, EvaluationError

if TYPE_CHECKING:
    import pandas as pd

    from avsbench.interop import Metric

DEFAULT_CUTOFFS: tuple[int, ...] = (5, 10, 15, 20, 30, 100, 200, 500, 1000)
DEFAULT_MAX_RESULTS = 1000
RECALL_LEVELS: tuple[float, ...] = (
    0.0,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    1.0,
)
REL_EPSILON = 0.00001  # added to the relevant count of a stratum
SAMPLED_EPSILON = 0.00003  # added to the sampled count of a stratum
TOPICS_PER_PASS = 64  # topics whose per-rank counters are computed together


@dataclass(frozen=True)
class TopicResult:
    """sample_eval's measures for one topic."""

    topic: str
    inf_ap: float
    inf_ndcg: float
    precision_at: dict[int, float]  # iP@k
    inum_rel_ret: float  # estimated relevant shots retrieved (within the first max_results)
    inum_rel: float  # R-hat, estimated relevant shots in the collection
    num_ret: int  # run lines of the topic, duplicates and lines past max_results included
    num_ranked: int  # distinct shots scored (at most max_results)
    num_distinct: int  # distinct shots listed
    iprec_at_recall: tuple[float, ...]  # this topic's 11 interpolated precisions
    in_run: bool = True  # False: absent from the run, scored 0 (missing_as_zero)

    def measures(self) -> dict[str, float | int]:
        """Measures under sample_eval's names (iprec@rec: this topic's interpolated precisions)."""
        return _measures(
            self.inf_ap,
            self.inf_ndcg,
            self.iprec_at_recall,
            self.precision_at,
            self.inum_rel_ret,
            self.inum_rel,
            self.num_ret,
        )


def _measures(ap, ndcg, iprec, precision_at, rel_ret, rel, ret) -> dict[str, float | int]:
    out: dict[str, float | int] = {"infAP": ap, "infNDCG": ndcg}
    out.update({f"iprec@rec{level:4.2f}": v for level, v in zip(RECALL_LEVELS, iprec)})
    out.update({f"iP{c}": v for c, v in precision_at.items()})
    out.update({"inum_rel_ret": rel_ret, "inum_rel": rel, "num_ret": ret})
    return out


@dataclass(frozen=True)
class EvalResult:
    """A run scored against qrels: per-topic results (numeric topic order) and sample_eval's summary."""

    per_topic: dict[str, TopicResult]
    inf_ap: float
    inf_ndcg: float
    iprec_at_recall: tuple[float, ...]
    precision_at: dict[int, float]
    inum_rel_ret: float  # sum over scored topics
    inum_rel: float  # sum of R-hat over ALL qrels topics (as sample_eval prints it)
    num_ret: int  # distinct shots scored over all topics (at most max_results each)
    num_topics: int  # the divisor of the means
    cutoffs: tuple[int, ...]
    max_results: int
    missing_topics: tuple[str, ...]  # in the qrels, not in the run
    foreign_topics: tuple[str, ...]  # in the run, not in the qrels (ignored)
    duplicate_lines: dict[str, int]  # topic -> lines repeating a shot already listed
    over_limit_topics: dict[str, int]  # topic -> distinct shots, where more than max_results
    missing_as_zero: bool = False
    rank_conflicts: dict[str, str] = field(default_factory=dict)  # topic -> how its scores contradict its ranks
    run_name: str = ""
    run_path: str | None = None
    qrels_path: str | None = None

    @property
    def scored_topics(self) -> list[str]:
        """Topics present in both run and qrels (the ones sample_eval scores)."""
        return [t for t, r in self.per_topic.items() if r.in_run]

    def measures(self) -> dict[str, float | int]:
        """Summary measures under sample_eval's names, in its output order."""
        return _measures(
            self.inf_ap,
            self.inf_ndcg,
            self.iprec_at_recall,
            self.precision_at,
            self.inum_rel_ret,
            self.inum_rel,
            self.num_ret,
        )

    def to_dict(self, per_topic: bool = True) -> dict[str, Any]:
        """JSON-ready dict (floats at full precision)."""
        out: dict[str, Any] = {
            "run": self.run_name,
            "run_path": self.run_path,
            "qrels": self.qrels_path,
            "num_topics": self.num_topics,
            "missing_as_zero": self.missing_as_zero,
            "summary": self.measures(),
            "scored_topics": self.scored_topics,
            "missing_topics": list(self.missing_topics),
            "foreign_topics": list(self.foreign_topics),
            "duplicate_lines": dict(self.duplicate_lines),
            "over_limit_topics": dict(self.over_limit_topics),
            "rank_conflicts": dict(self.rank_conflicts),
        }
        if per_topic:
            out["per_topic"] = {t: {**r.measures(), "in_run": r.in_run} for t, r in self.per_topic.items()}
        return out

    def to_dataframe(self, shape: str = "long") -> pd.DataFrame:
        """Per-topic measures: ``long`` (run, topic, measure, value) or ``wide`` (topic x measure)."""
        from avsbench.interop import result_to_dataframe

        return result_to_dataframe(self, shape)

    def to_metrics(self) -> Iterator[Metric]:
        """Per-topic measures as ir_measures-style ``Metric(query_id, measure, value)`` tuples."""
        from avsbench.interop import result_to_metrics

        return result_to_metrics(self)


@lru_cache(maxsize=8)
def _rank_numbers(max_results: int) -> np.ndarray:
    return np.arange(1, max_results + 1, dtype=np.int64)


def evaluate_topic(
    qt: QrelsTopic,
    lines: TopicLines,
    *,
    max_results: int = DEFAULT_MAX_RESULTS,
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
) -> TopicResult:
    """Score one topic's run lines against its qrels exactly as sample_eval.pl does."""
    return _evaluate_topics([(qt, lines)], max_results, tuple(cutoffs))[0]


def _evaluate_topics(
    pairs: Sequence[tuple[QrelsTopic, TopicLines]],
    max_results: int,
    cutoffs: tuple[int, ...],
) -> list[TopicResult]:
    """:func:`evaluate_topic` for each (qrels topic, run lines), the per-rank counters of all topics in one pass."""
    ranked = [_ranked_judgments(qt, lines, max_results) for qt, lines in pairs]
    scored = [i for i, (stratum_of, _, _) in enumerate(ranked) if len(stratum_of)]
    results = [_zero_topic(qt, cutoffs, in_run=True) for qt, _ in pairs]
    for first in range(0, len(scored), TOPICS_PER_PASS):  # batches bound the counters' memory
        batch = scored[first : first + TOPICS_PER_PASS]
        width = max(len(pairs[i][0].strata) for i in batch)
        counters = _rank_counters([ranked[i][0] for i in batch], [ranked[i][1] for i in batch], width)
        sum_prec, sum_gain = _relevant_sums(counters, max_results)
        for n, i in enumerate(batch):
            qt, lines = pairs[i]
            sums = (sum_prec[n], sum_gain[n])
            results[i] = _topic_result(qt, lines, counters, n, sums, ranked[i][2], max_results, cutoffs)
    return results


def _ranked_judgments(qt: QrelsTopic, lines: TopicLines, max_results: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Stratum index and judgment of the topic's ranked shots (the first ``max_results``), and its distinct shots."""
    if lines.kept_best is not None and max_results > lines.kept_best:
        raise ConfigError(
            f"the run was read keeping the best {lines.kept_best} shots per topic; cannot score {max_results}"
        )
    rows = lines.scorer_rows(max_results)
    num_distinct = len(lines.distinct_rows()) + lines.dropped_shots
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0), num_distinct
    stratum_of, gain = qt.lookup(lines.shot_ids[rows], lines.shot_keys[rows])
    return stratum_of, gain, num_distinct


def _topic_result(
    qt: QrelsTopic,
    lines: TopicLines,
    counters: _Counters,
    n: int,
    sums: tuple[np.ndarray, np.ndarray],
    num_distinct: int,
    max_results: int,
    cutoffs: tuple[int, ...],
) -> TopicResult:
    """The measures of the ``n``-th topic of ``counters`` (``sums``: its SAP and DCG sums per stratum)."""
    start, end = int(counters.starts[n]), int(counters.ends[n])
    est_rel_ret = counters.est_rel_ret[start:end]
    rr_final = float(est_rel_ret[-1])
    k_max = end - start
    strata = range(len(qt.strata))
    sum_prec, sum_gain = sums[0].tolist(), sums[1].tolist()
    last = end - 1
    return TopicResult(
        topic=qt.topic,
        inf_ap=_inf_ap(qt, [sum_prec[c] for c in strata], max_results),
        inf_ndcg=_inf_ndcg(
            qt,
            int(counters.pool_seen[last]),
            [int(counters.docs[c, last]) for c in strata],
            [int(counters.samp[c, last]) for c in strata],
            sum_gain,
            max_results,
        ),
        precision_at={c: (float(est_rel_ret[c - 1]) if c <= k_max else rr_final) / c for c in cutoffs},
        inum_rel_ret=rr_final,
        inum_rel=qt.estimated_relevant,
        num_ret=lines.num_lines,
        num_ranked=k_max,
        num_distinct=num_distinct,
        iprec_at_recall=_interpolated_precision(
            est_rel_ret,
            _rank_numbers(max_results)[:k_max],
            qt.estimated_relevant,
            rr_final,
        ),
    )


class _Counters(NamedTuple):
    """Per-stratum counters after each rank (columns; the topics' rankings one after another), strata in
    string order (rows, as many as the topic with most strata has); exact integers as floats."""

    starts: np.ndarray  # each topic's first column
    ends: np.ndarray  # each topic's end column (exclusive)
    topic_of: np.ndarray  # each column's topic (position in starts)
    ranks: np.ndarray  # each column's rank in its topic (1-based)
    stratum_of: np.ndarray  # each column's stratum (-1: not in the pool)
    gain: np.ndarray  # each column's judgment (0 outside the pool)
    in_stratum: np.ndarray  # rank's shot belongs to the stratum
    docs: np.ndarray  # pool shots seen
    samp: np.ndarray  # sampled shots seen
    relr: np.ndarray  # relevant shots seen
    pool_seen: np.ndarray  # D: pool shots seen (all strata)
    est_rel_ret: np.ndarray  # RR_k: estimated relevant retrieved down to rank k


def _rank_counters(strata: list[np.ndarray], gains: list[np.ndarray], width: int) -> _Counters:
    """The counters of each topic's ranking (``strata``/``gains``: per topic, in rank order), restarted per topic."""
    lengths = np.array([len(s) for s in strata], dtype=np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    topic_of = np.repeat(np.arange(len(strata)), lengths)
    ranks = np.arange(1, int(ends[-1]) + 1, dtype=np.int64) - np.repeat(starts, lengths)
    stratum_of, gain = np.concatenate(strata), np.concatenate(gains)
    in_stratum = stratum_of == np.arange(width)[:, None]
    flags = np.concatenate(
        (
            in_stratum,
            in_stratum & (gain >= 0),
            in_stratum & (gain > 0),
            [stratum_of >= 0],
        )
    )
    counts = np.cumsum(flags, axis=1, dtype=np.float64)
    before = np.zeros((len(flags), len(strata)))  # the counts of the earlier topics, taken off (exact integers)
    before[:, 1:] = counts[:, starts[1:] - 1]
    counts -= np.repeat(before, lengths, axis=1)
    docs, samp, relr = (
        counts[:width],
        counts[width : 2 * width],
        counts[2 * width : 3 * width],
    )
    terms = docs * (relr + REL_EPSILON) / (samp + SAMPLED_EPSILON)
    est_rel_ret = terms[0]
    for c in range(1, width):  # summed over strata in order, as the script does (missing strata add 0.0)
        est_rel_ret = est_rel_ret + terms[c]
    return _Counters(
        starts,
        ends,
        topic_of,
        ranks,
        stratum_of,
        gain,
        in_stratum,
        docs,
        samp,
        relr,
        counts[3 * width],
        est_rel_ret,
    )


def _relevant_sums(counters: _Counters, max_results: int) -> tuple[np.ndarray, np.ndarray]:
    """Per topic and stratum (rows, columns): the sum of the estimated precisions at its relevant ranks (SAP) and
    of their discounted gains."""
    width, num_topics = counters.docs.shape[0], len(counters.starts)
    rel_pos = np.flatnonzero(counters.gain > 0)
    if rel_pos.size == 0:
        return np.zeros((num_topics, width)), np.zeros((num_topics, width))
    rel_ranks = counters.ranks[rel_pos]
    own = counters.in_stratum[:, rel_pos]
    docs_above = counters.docs[:, rel_pos] - own  # counters of the ranks above each relevant rank
    pool_above = counters.pool_seen[rel_pos] - 1
    pool_divisor = np.where(pool_above != 0, pool_above, 1.0)
    relr_above = counters.relr[:, rel_pos] - own + REL_EPSILON
    terms = (docs_above / pool_divisor) * relr_above / (counters.samp[:, rel_pos] - own + SAMPLED_EPSILON)
    terms = np.where((pool_above != 0) & (docs_above != 0), terms, 0.0)
    prec_above = terms[0]
    for c in range(1, width):
        prec_above = prec_above + terms[c]
    precision = 1 / rel_ranks + (pool_above / rel_ranks) * prec_above
    dcg_gain = counters.gain[rel_pos] / discount_table(max_results)[rel_ranks]
    groups = counters.topic_of[rel_pos] * width + counters.stratum_of[rel_pos]
    sums = _sequential_group_sums(groups, np.stack((precision, dcg_gain)), num_topics * width)
    return sums[0].reshape(num_topics, width), sums[1].reshape(num_topics, width)


def _sequential_group_sums(groups: np.ndarray, values: np.ndarray, num_groups: int) -> np.ndarray:
    """Per group, the sum of its values (columns of ``values``) added one at a time in order, like the script."""
    order = np.argsort(groups, kind="stable")
    groups, values = groups[order], values[:, order]
    sizes = np.bincount(groups, minlength=num_groups)
    firsts = np.cumsum(sizes) - sizes
    column = np.arange(len(groups)) - firsts[groups]
    grid = np.zeros((len(values), num_groups, int(sizes.max())))  # a group's values along a row, then 0.0
    grid[:, groups, column] = values
    return np.cumsum(grid, axis=2)[:, :, -1]  # cumsum adds along the row one term at a time


def _inf_ap(qt: QrelsTopic, sum_prec: list[float], max_results: int) -> float:
    estimate = qt.estimated_relevant
    ap = 0.0
    if estimate != 0:
        for i, s in enumerate(qt.strata):
            if qt.sampled.get(s, 0) != 0:
                r = qt.relevant.get(s, 0)
                ap += (qt.stratum_weight(s) / estimate) * (sum_prec[i] / r if r != 0 else 0)
    if estimate > max_results:
        ap = ap * estimate / max_results
    return ap


def _inf_ndcg(
    qt: QrelsTopic,
    pool_final: int,
    docs_final: list[int],
    samp_final: list[int],
    sum_gain: list[float],
    max_results: int,
) -> float:
    dcg = 0.0
    for c in range(len(docs_final)):
        if pool_final != 0 and samp_final[c] != 0:
            dcg += (docs_final[c] / pool_final) * sum_gain[c] / samp_final[c]
    idcg = qt.ideal_dcg(max_results)
    return pool_final * dcg / idcg if idcg != 0 else 0.0


def _interpolated_precision(
    est_rel_ret: np.ndarray, ranks: np.ndarray, estimate: float, rr_final: float
) -> tuple[float, ...]:
    """sample_eval's 11-point rule: walking up from the last rank, at most one recall level per rank."""
    levels = [x * estimate for x in RECALL_LEVELS]
    values = [0.0] * len(levels)
    cur = len(levels) - 1
    while cur >= 0 and levels[cur] > rr_final:
        cur -= 1  # levels above the final estimated recall get nothing
    best_overall = 0.0
    if ranks.size:
        precision = est_rel_ret / ranks
        best_below = np.maximum.accumulate(precision[::-1])[::-1]  # max precision at this rank or deeper
        best_overall = float(best_below[0])
        end = ranks.size
        while cur >= 0 and end > 0:
            hits = np.flatnonzero(est_rel_ret[:end] < levels[cur])
            if hits.size == 0:
                break
            i = int(hits[-1])
            values[cur] = float(best_below[i])
            cur -= 1
            end = i
    while cur >= 0:
        values[cur] = best_overall
        cur -= 1
    return tuple(values)


def _zero_topic(qt: QrelsTopic, cutoffs: Sequence[int], in_run: bool) -> TopicResult:
    zeros = (0.0,) * len(RECALL_LEVELS)
    return TopicResult(
        qt.topic,
        0.0,
        0.0,
        dict.fromkeys(cutoffs, 0.0),
        0.0,
        qt.estimated_relevant,
        0,
        0,
        0,
        zeros,
        in_run=in_run,
    )


def evaluate(
    qrels: Qrels,
    run: RunFile,
    *,
    max_results: int = DEFAULT_MAX_RESULTS,
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
    missing_as_zero: bool = False,
    lenient: bool = False,
) -> EvalResult:
    """Score ``run`` against ``qrels`` like ``sample_eval.pl``.

    Means divide by the number of topics present in both run and qrels (NIST's rule);
    ``missing_as_zero`` also counts qrels topics absent from the run, as 0. When no run topic
    is a qrels topic the Perl script dies dividing by zero: here an :class:`EvaluationError`,
    or with ``lenient`` a result with ``num_topics == 0`` and zero means (whose sample_eval
    text is empty, like the script's stdout).
    """
    if max_results < 1:
        raise ConfigError(f"max_results must be at least 1, got {max_results}")
    if any(c < 1 for c in cutoffs):
        raise ConfigError(f"cut-offs must be at least 1, got {tuple(cutoffs)}")
    cutoffs = tuple(cutoffs)
    run_topics = [t for t, lines in run.topics.items() if lines.num_lines]
    scored = sorted((t for t in run_topics if t in qrels.topics), key=topic_sort_key)
    foreign = tuple(sorted((t for t in run_topics if t not in qrels.topics), key=topic_sort_key))
    in_run = set(run_topics)
    missing = tuple(t for t in qrels.topic_ids if t not in in_run)
    results = _evaluate_topics([(qrels.topics[t], run.topics[t]) for t in scored], max_results, cutoffs)
    per_topic = dict(zip(scored, results))
    if missing_as_zero and missing:
        per_topic.update((t, _zero_topic(qrels.topics[t], cutoffs, in_run=False)) for t in missing)
        per_topic = {t: per_topic[t] for t in sorted(per_topic, key=topic_sort_key)}
    if not per_topic and not lenient:
        raise _no_common_topic(qrels, run, foreign)
    distinct = {
        t: per_topic[t].num_distinct if t in per_topic else distinct_shot_count(run.topics[t]) for t in run_topics
    }
    return EvalResult(
        per_topic=per_topic,
        **_means(per_topic, cutoffs),
        inum_rel=qrels.total_estimated_relevant,
        num_topics=len(per_topic),
        cutoffs=cutoffs,
        max_results=max_results,
        missing_topics=missing,
        foreign_topics=foreign,
        duplicate_lines={t: run.topics[t].num_lines - n for t, n in distinct.items() if run.topics[t].num_lines - n},
        over_limit_topics={t: n for t, n in distinct.items() if n > max_results},
        missing_as_zero=missing_as_zero,
        rank_conflicts=run.rank_conflicts(),
        run_name=run.name,
        run_path=run.path,
        qrels_path=qrels.path,
    )


def _no_common_topic(qrels: Qrels, run: RunFile, foreign: tuple[str, ...]) -> EvaluationError:
    shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
    hint = ""
    if any("1" + t in qrels.topics for t in foreign):
        hint = '; the run uses plain topic numbers, the qrels "1" + number (e.g. 661 -> 1661)'
    return EvaluationError(
        f"none of the run's topics ({shown or 'none'}) is a topic of the qrels {qrels.path} "
        f"({', '.join(qrels.topic_ids[:3])}, ...){hint}; "
        "nothing to average (sample_eval.pl dies dividing by zero here)",
        path=run.path,
        expected='qrels-style topic ids ("1" + topic number, e.g. 1611) matching the qrels',
    )


def _means(per_topic: dict[str, TopicResult], cutoffs: tuple[int, ...]) -> dict[str, Any]:
    """sample_eval's summary: sums in its orders (numeric topic order; string order for the 11 points)."""
    sum_ap = sum_ndcg = sum_rr = 0.0
    sum_prec = dict.fromkeys(cutoffs, 0.0)  # a repeated cut-off (RUC's copy lists 1000 twice) is summed once
    num_ranked = 0
    for r in per_topic.values():
        sum_ap += r.inf_ap
        sum_ndcg += r.inf_ndcg
        for c in sum_prec:
            sum_prec[c] += r.precision_at[c]
        sum_rr += r.inum_rel_ret
        num_ranked += r.num_ranked
    buckets = [0.0] * len(RECALL_LEVELS)
    for t in sorted(per_topic):
        for i, v in enumerate(per_topic[t].iprec_at_recall):
            buckets[i] += v
    divisor = len(per_topic) or 1  # lenient, no topic: zero means
    return {
        "inf_ap": sum_ap / divisor,
        "inf_ndcg": sum_ndcg / divisor,
        "iprec_at_recall": tuple(b / divisor for b in buckets),
        "precision_at": {c: sum_prec[c] / divisor for c in cutoffs},
        "inum_rel_ret": sum_rr,
        "num_ret": num_ranked,
    }


def format_sample_eval(result: EvalResult, per_topic: bool = False) -> str:
    """The text ``perl sample_eval.pl [-q] QRELS RUN`` prints, byte for byte (``per_topic`` = ``-q``).

    Identical to the Perl output for results computed with the defaults (not ``missing_as_zero``,
    which adds zero lines for absent topics and divides by more topics). With no scored topic the
    text is empty, as the script's stdout is when it dies.
    """
    if result.num_topics == 0:
        return ""
    out: list[str] = []
    if per_topic:
        for t, r in result.per_topic.items():
            out.append(f"infAP\t\t{t}\t\t{r.inf_ap:6.4f}\n")
            out.append(f"infNDCG\t\t{t}\t\t{r.inf_ndcg:6.4f}\n")
            out.extend(f"iP{c}\t\t{t}\t\t{r.precision_at[c]:6.4f}\n" for c in result.cutoffs)
            out.append(f"inum_rel_ret\t{t}\t{r.inum_rel_ret:14.4f}\n")
            out.append(f"inum_rel\t{t}\t{r.inum_rel:14.4f}\n")
            out.append(f"num_ret\t\t{t}\t{r.num_ret:9d}\n")
    out.append(f"infAP\t\tall\t\t{result.inf_ap:6.4f}\n")
    out.append(f"infNDCG\t\tall\t\t{result.inf_ndcg:6.4f}\n")
    out.extend(f"iprec@rec{level:4.2f}\tall\t\t{v:6.4f}\n" for level, v in zip(RECALL_LEVELS, result.iprec_at_recall))
    out.extend(f"iP{c}\t\tall\t\t{result.precision_at[c]:6.4f}\n" for c in result.cutoffs)
    out.append(f"inum_rel_ret\tall\t{result.inum_rel_ret:14.4f}\n")
    out.append(f"inum_rel\tall\t{result.inum_rel:14.4f}\n")
    out.append(f"num_ret\t\tall\t{result.num_ret:9d}\n")
    return "".join(out)
