"""Render a run comparison as rich tables, Markdown, LaTeX, CSV, JSON and JSON lines.

:class:`ComparisonReport` wraps one :class:`avsbench.eval.compare.Comparison`, like ranx's
``Report``: one object, many renderings, all from the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from avsbench.errors import ConfigError
from avsbench.eval.leaderboard import CONFIDENCE_LEVELS, LeaderboardEntry
from avsbench.report.formats import COMPARISON, DEFAULT_WIDTH, RenderOptions, render
from avsbench.report.tables import ReportTable, is_missing, latex_tables, markdown_tables, print_tables, tables_text

if TYPE_CHECKING:  # the comparison engine (and the scorer behind it) loads only when comparing
    from avsbench.eval.compare import Comparison

TABLES = ("per_year", "per_topic", "wins_ties_losses", "significance", "coverage", "coverage_summary")


def _json_value(value: object) -> object:
    if is_missing(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _frame_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Records with exact floats (numpy scalars as Python numbers) and NaN as None (valid JSON)."""
    return [{str(k): _json_value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


# --- the comparison report -----------------------------------------------------------------


def _reference_label(entry: LeaderboardEntry) -> str:
    what = entry.system + (f" / {entry.run}" if entry.run else "")
    return f"ref: {what} ({entry.category}) [{entry.confidence}]"


class ComparisonReport:
    """A rendered view of one comparison: tables, Markdown, LaTeX, CSV, JSON, data frames."""

    def __init__(self, comparison: Comparison) -> None:
        self.comparison = comparison

    # data ------------------------------------------------------------------------------
    def to_dataframe(self, table: str = "per_year") -> pd.DataFrame:
        """One of the tables as a data frame with raw values (see :data:`TABLES`)."""
        c = self.comparison
        frames = {
            "per_year": c.per_year.reset_index(),
            "per_topic": c.per_topic,
            "wins_ties_losses": c.wins_ties_losses.reset_index(),
            "significance": c.significance,
            "coverage": c.coverage,
            "coverage_summary": self._coverage_summary(),
        }
        if table not in frames:
            raise ConfigError(f"unknown table {table!r}", expected=" or ".join(TABLES))
        return frames[table].copy()

    def _coverage_summary(self) -> pd.DataFrame:
        coverage = self.comparison.coverage
        columns = [c for c in coverage.columns if "@" in c]
        summary = coverage.groupby(["run", "year"], sort=False)[columns].mean().reset_index()
        summary.insert(2, "topics", coverage.groupby(["run", "year"], sort=False).size().to_numpy())
        return summary

    def to_dict(self) -> dict[str, object]:
        c = self.comparison
        return {
            "metric": c.metric,
            "runs": [{"name": n, "path": c.paths[n]} for n in c.runs],
            "baseline": c.baseline,
            "years": c.years,
            "synthetic_years": c.synthetic_years,
            "warnings": c.warnings,
            "settings": c.settings,
            "per_year": _frame_records(c.per_year.reset_index()),
            "per_topic": _frame_records(c.per_topic),
            "wins_ties_losses": _frame_records(c.wins_ties_losses.reset_index()),
            "significance": _frame_records(c.significance),
            "coverage": _frame_records(c.coverage),
            "references": {y: [e.as_dict() for e in entries] for y, entries in c.references.items()},
        }

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False) + "\n"

    def to_csv(self, table: str = "per_topic") -> str:
        """One table as CSV with full-precision values."""
        return self.to_dataframe(table).to_csv(index=False, lineterminator="\n")

    # display -----------------------------------------------------------------------------
    def tables(self, per_topic: bool = True, shorten_text: bool = False) -> list[ReportTable]:
        """The displayed tables: per year (with reference rows), significance, wins/ties/losses,
        judged coverage, and (optionally) per topic (topic texts cut to 48 characters with
        ``shorten_text``, as on a terminal)."""
        out = [self._per_year_table()]
        if self.comparison.baseline is not None:
            out += [self._significance_table(), self._wins_table()]
        out.append(self._coverage_table())
        if per_topic:
            out.append(self._per_topic_table(shorten_text))
        return out

    def _per_year_table(self) -> ReportTable:
        c = self.comparison
        frame = c.per_year.reset_index()
        if c.baseline is not None:
            frame["run"] = [f"{n} (baseline)" if n == c.baseline else n for n in frame["run"]]
        formats = {y: ".4f" for y in c.years} | {f"{y} topics": "d" for y in c.years}
        formats |= {"mean over years": ".4f", "topics": "d"}
        rows = []
        notes: list[str] = []
        for year, entries in c.references.items():
            for entry in entries:
                notes.append(f"[{len(notes) + 1}] {entry.year} {entry.system}: {entry.value:.4f}, {entry.source}")
                rows.append({"run": f"{_reference_label(entry)} [{len(notes)}]", year: entry.value})
        if rows:
            frame = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)
            counts = [f"{y} topics" for y in c.years] + ["topics"]
            frame[counts] = frame[counts].astype("Int64")
            levels = ", ".join(f"{k} = {v}" for k, v in CONFIDENCE_LEVELS.items())
            notes.insert(
                0, f"Reference rows are published results ({levels}); they were scored by their authors, not here."
            )
        if len(c.years) > 1:
            notes.append(
                "'mean over years' is the mean of the per-year means over the years a run covers; each year "
                "is scored with its own qrels."
            )
        else:
            frame = frame.drop(columns=[f"{c.years[0]} topics", "mean over years"])
        notes += [f"warning: {w}" for w in c.warnings]
        title = f"Mean {c.metric} per year"
        if c.synthetic_years:
            title += " (SYNTHETIC: " + ", ".join(c.synthetic_years) + ")"
            notes.insert(
                0,
                "SYNTHETIC: " + ", ".join(c.synthetic_years) + " scored with the qrels of a generated demo "
                "collection; these numbers are not comparable to published TRECVID results.",
            )
        return ReportTable.from_frame(title, frame, formats, notes)

    def _significance_table(self) -> ReportTable:
        c = self.comparison
        s = c.significance
        confidence = float(cast(float, c.settings["confidence"]))
        alpha = round(1 - confidence, 10)
        level = f"{100 * confidence:g}"
        frame = pd.DataFrame(
            {
                "scope": s["scope"],
                "run": s["run"],
                "topics": s["topics"],
                "mean Δ": s["mean Δ"],
                f"{level}% CI": [f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(s["ci low"], s["ci high"])],
                "p": s["p"],
                "p (Holm)": s["p (Holm)"],
                "": ["*" if p <= alpha else "" for p in s["p (Holm)"]],
            }
        )
        permutations = c.settings["permutations"]
        notes = [
            f"Paired randomization test (sign flips, {permutations} permutations or exact enumeration, seed "
            f"{c.settings['seed']}), two-sided; bootstrap BCa CI of the mean difference "
            f"({c.settings['bootstrap_samples']} resamples). Holm correction over the runs compared "
            f"within each scope; * = p (Holm) <= {alpha:g}."
            + (" Scope 'all' pools the topics of every year." if len(c.years) > 1 else ""),
        ]
        formats = {"topics": "d", "mean Δ": "+.4f", "p": ".4f", "p (Holm)": ".4f"}
        return ReportTable.from_frame(f"Significance against the baseline {c.baseline}", frame, formats, notes)

    def _wins_table(self) -> ReportTable:
        c = self.comparison
        frame = c.wins_ties_losses.reset_index()
        note = f"Per topic against {c.baseline}; a tie differs by at most {c.settings['tie_tolerance']}."
        return ReportTable.from_frame("Wins / ties / losses", frame, {"wins": "d", "ties": "d", "losses": "d"}, [note])

    def _coverage_table(self) -> ReportTable:
        frame = self._coverage_summary()
        formats = {c: ".3f" for c in frame.columns if "@" in c} | {"topics": "d"}
        depths = " / ".join(str(d) for d in cast(Sequence[int], self.comparison.settings["coverage_depths"]))
        notes = [
            f"Mean over topics of the fraction of each run's top {depths} shots that lie in the judged pool "
            "(judged@N, any judgment) and in its sampled part (sampled@N, judgment >= 0). Shots outside the "
            "pool count as non-relevant: a run with low coverage (e.g. a new system on a fixed pool) is under-rated."
        ]
        return ReportTable.from_frame("Judged coverage", frame, formats, notes)

    def _per_topic_table(self, shorten_text: bool) -> ReportTable:
        c = self.comparison
        frame = c.per_topic.drop(columns=["topic"]).rename(columns={"number": "topic"})
        if shorten_text:
            frame["text"] = [t if len(t) <= 48 else t[:47] + "…" for t in frame["text"]]
        formats = {n: ".4f" for n in c.runs} | {col: "+.4f" for col in frame.columns if str(col).startswith("Δ ")}
        formats["topic"] = "d"
        aliases = {name: f"R{i}" for i, name in enumerate(c.runs, 1)}
        return ReportTable.from_frame(f"{c.metric} per topic", frame, formats, aliases=aliases, keys=3)

    def to_table(self, per_topic: bool = True, width: int = 120) -> str:
        """Plain-text rendering of the rich tables."""
        return tables_text(self.tables(per_topic, shorten_text=True), width=width)

    def print(self, per_topic: bool = True, console=None) -> None:
        """Print the rich tables on a terminal."""
        print_tables(self.tables(per_topic, shorten_text=True), console)

    def to_markdown(self, per_topic: bool = True) -> str:
        return markdown_tables(self.tables(per_topic))

    def to_latex(self, per_topic: bool = True) -> str:
        return latex_tables(self.tables(per_topic))

    def render(self, fmt: str, per_topic: bool = True, table: str | None = None, width: int = DEFAULT_WIDTH) -> str:
        """Render in one of the comparison's formats (:func:`avsbench.report.formats.format_names`);
        ``table`` picks the table of ``csv`` and ``jsonl`` (default: per_topic, or per_year)."""
        return render(COMPARISON, fmt, self, RenderOptions(per_topic=per_topic, table=table, width=width))


def _chosen_table(options: RenderOptions) -> str:
    return options.table or ("per_topic" if options.per_topic else "per_year")


def render_table(report: ComparisonReport, options: RenderOptions) -> str:
    """The rich tables, ``options.width`` columns wide."""
    return tables_text(report.tables(options.per_topic, shorten_text=True), options.width, options.color)


def render_markdown(report: ComparisonReport, options: RenderOptions) -> str:
    return report.to_markdown(options.per_topic)


def render_latex(report: ComparisonReport, options: RenderOptions) -> str:
    return report.to_latex(options.per_topic)


def render_json(report: ComparisonReport, options: RenderOptions) -> str:
    return report.to_json()


def render_csv(report: ComparisonReport, options: RenderOptions) -> str:
    return report.to_csv(_chosen_table(options))


def render_jsonl(report: ComparisonReport, options: RenderOptions) -> str:
    """One JSON object per row of the chosen table, full precision (NaN as null)."""
    records = _frame_records(report.to_dataframe(_chosen_table(options)))
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def build_comparison_report(runs: Sequence[Any], baseline: Any = None, **options: Any) -> ComparisonReport:
    """Score and compare run files; see :func:`avsbench.eval.compare.compare_runs` for options."""
    from avsbench.eval.compare import compare_runs as compute_comparison

    return ComparisonReport(compute_comparison(runs, baseline, **options))
