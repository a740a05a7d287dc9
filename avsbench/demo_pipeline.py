"""``avsbench demo``: the whole pipeline on the generated (synthetic) demo collection.

Generate the demo root if absent, train LAFF and its baselines (attention-free mean fusion,
one model per video feature), rank the year's topics with each, write the TREC runs and the
official XML (validated), score them, compare the runs with significance, show LAFF's learned
feature weights, and score the two real public TRECVID 2021 runs against the real 2021 qrels.

This module sits above every layer (data, eval, model, ranking, report); the CLI only renders.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avsbench.data.atomic import atomic_write_bytes
from avsbench.data.collection import Collection
from avsbench.data.resources import bundled_qrels, bundled_runs
from avsbench.data.runs import RunFile
from avsbench.data.submission import SubmissionHeader, nist_run_name, submission_xml, validate_submission
from avsbench.data.synthetic import (
    DEFAULT_SHOTS,
    DEFAULT_TRAIN_VIDEOS,
    DEFAULT_VAL_VIDEOS,
    collections_for_years,
    ensure_demo,
)
from avsbench.data.topics import Year, get_year
from avsbench.errors import EvaluationError
from avsbench.eval.scoring import ScoredRun, score_runs
from avsbench.progress import ProgressFactory

if TYPE_CHECKING:
    from avsbench.report.compare_report import ComparisonReport

VIDEO_FEATURES = ("demo_clip512", "demo_partial768", "demo_noisy1024")
TEXT_FEATURES = "bow,w2v,clip:demo_clip512"


@dataclass(frozen=True)
class DemoSize:
    """How big the generated collection is and how long the models train."""

    n_shots: int
    n_train_videos: int
    n_val_videos: int
    epochs: int


FULL = DemoSize(n_shots=DEFAULT_SHOTS, n_train_videos=DEFAULT_TRAIN_VIDEOS, n_val_videos=DEFAULT_VAL_VIDEOS, epochs=5)
QUICK = DemoSize(n_shots=6_000, n_train_videos=1_500, n_val_videos=300, epochs=3)


@dataclass
class DemoModel:
    """One trained model of the demo and what it produced."""

    name: str  # run tag: LAFF, MeanFusion, Single_<feature>
    description: str
    model_dir: Path
    val_metrics: dict[str, float]
    train_seconds: float
    run_path: Path | None = None

    def ranked_run(self) -> Path:
        """The run file that ranking wrote for this model."""
        if self.run_path is None:
            raise EvaluationError(f"{self.name} has not been ranked yet")
        return self.run_path


@dataclass
class DemoReport:
    """Everything the demo did, for rendering."""

    root: Path
    out_dir: Path
    year: Year
    size: DemoSize
    models: list[DemoModel] = field(default_factory=list)
    feature_weights: dict[str, float] = field(default_factory=dict)
    xml_path: Path | None = None
    xml_problems: list[str] = field(default_factory=list)
    trec_vs_xml_identical: bool = False
    synthetic_scores: list[ScoredRun] = field(default_factory=list)
    comparison: ComparisonReport | None = None
    plot_path: Path | None = None
    real_scores: list[ScoredRun] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _trained(name: str, description: str, result, out: Path) -> DemoModel:
    return DemoModel(name, description, out, dict(result.best_metrics), result.seconds)


def _train_models(report: DemoReport, settings, progress: ProgressFactory | None, say: Callable[[str], None]) -> None:
    from avsbench.model.fusion_study import average_video_weights
    from avsbench.model.train import train_model

    models_dir = report.out_dir / "models"
    common: dict[str, Any] = {
        "val_collection": "demoval",
        "rootpath": report.root,
        "device": "cpu",
        "progress": progress,
    }
    variants: list[tuple[str, str, list[str], str]] = [
        ("LAFF", "LAFF: attention fusion of all video features", list(VIDEO_FEATURES), "attention"),
        ("MeanFusion", "attention-free mean fusion of all video features", list(VIDEO_FEATURES), "mean"),
    ]
    variants += [(f"Single_{f}", f"single video feature {f}", [f], "attention") for f in VIDEO_FEATURES]
    for name, description, features, fusion in variants:
        say(f"training {name} ({description})")
        out = models_dir / name
        result = train_model(
            "demotrain",
            features,
            TEXT_FEATURES,
            settings=dataclasses.replace(settings, fusion=fusion),
            out_dir=out,
            **common,
        )
        report.models.append(_trained(name, description, result, out))
        if name == "LAFF":
            report.feature_weights = average_video_weights(
                result, Collection(report.root, "demoval"), settings.max_frames
            )


def _rank_models(report: DemoReport, progress: ProgressFactory | None) -> None:
    from avsbench.ranking.engine import RankSettings
    from avsbench.ranking.pipeline import rank_years

    for m in report.models:
        ranked = rank_years(
            [report.year],
            m.model_dir,
            settings=RankSettings(device="cpu"),
            rootpath=report.root,
            out_dir=report.out_dir / "runs",
            run_id=m.name,
            progress=progress,
        )
        m.run_path = ranked.runs[0].run_path


def _write_xml(report: DemoReport, laff: DemoModel) -> Path:
    """The official XML of the LAFF run, validated against our DTD and NIST's content checks."""
    year = report.year
    header = SubmissionHeader(
        "AVSBENCHDEMO",
        1,
        "F",
        "D",
        "avsbench demo: LAFF on the SYNTHETIC demo collection",
        task="M" if year.xml_dtd_year >= 2019 else None,
        novelty="C" if year.xml_dtd_year >= 2019 else None,
    )
    run = RunFile.read(laff.ranked_run())
    pairs = {topic: list(zip(lines.shots, lines.scores)) for topic, lines in run.topics.items()}
    elapsed = max(1, math.ceil(report.timings.get("rank", 1.0) / max(1, len(report.models)) / max(1, len(pairs))))
    data = submission_xml(pairs, year, header, elapsed)
    shots = Collection(report.root, year.collection).shots
    report.xml_problems = [str(p) for p in validate_submission(data, year=year, shot_ids=shots)]
    path = report.out_dir / "runs" / nist_run_name(header, year.xml_dtd_year)
    atomic_write_bytes(path, data)
    report.xml_path = path
    return path


def _generate_collection(rootpath: str | Path | None, evaluation: Year, size: DemoSize) -> Path:
    """The root of the SYNTHETIC demo collection for ``evaluation``'s topics, generated if absent."""
    root = ensure_demo(
        rootpath,
        collections=collections_for_years([evaluation.key]),
        n_shots=size.n_shots,
        n_train_videos=size.n_train_videos,
        n_val_videos=size.n_val_videos,
    )
    return Path(root)


def _score_synthetic(report: DemoReport, laff: DemoModel, xml_path: Path) -> None:
    """Score every model's run and the LAFF XML against the SYNTHETIC qrels, and compare the runs with LAFF."""
    from avsbench.report.compare_report import build_comparison_report

    report.synthetic_scores = score_runs([m.ranked_run() for m in report.models], rootpath=report.root)
    xml_scores = score_runs([xml_path], rootpath=report.root)
    report.trec_vs_xml_identical = _same_numbers(report.synthetic_scores[0], xml_scores[0])
    report.comparison = build_comparison_report(
        [m.ranked_run() for m in report.models[1:]], baseline=laff.ranked_run(), rootpath=report.root
    )


def run_demo(
    year: str | int = 2019,
    *,
    quick: bool = False,
    rootpath: str | Path | None = None,
    out_dir: str | Path = "runs/demo",
    progress: ProgressFactory | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> DemoReport:
    """Run the demo pipeline end to end and return what it did (see the module docstring).

    ``progress`` (see :mod:`avsbench.progress`) gets the bars of training and ranking; ``say`` one line per step.
    """
    from avsbench.model.train import DEMO_SETTINGS

    evaluation = get_year(year)
    size = QUICK if quick else FULL
    out = Path(out_dir)
    t0 = time.perf_counter()
    say(f"generating the SYNTHETIC demo collection ({size.n_shots:,} shots) if absent")
    report = DemoReport(_generate_collection(rootpath, evaluation, size), out, evaluation, size)
    report.timings["generate"] = time.perf_counter() - t0

    t = time.perf_counter()
    _train_models(report, dataclasses.replace(DEMO_SETTINGS, epochs=size.epochs), progress, say)
    report.timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    say(f"ranking the {evaluation.edition} topics with {len(report.models)} models")
    _rank_models(report, progress)
    report.timings["rank"] = time.perf_counter() - t

    laff = report.models[0]
    say("writing and validating the official XML of the LAFF run")
    xml_path = _write_xml(report, laff)

    t = time.perf_counter()
    say("scoring the runs against the SYNTHETIC qrels")
    _score_synthetic(report, laff, xml_path)
    report.timings["score"] = time.perf_counter() - t

    if importlib.util.find_spec("matplotlib") is not None:
        from avsbench.report.plots import plot_comparison

        report.plot_path = plot_comparison(report.comparison, out / "demo_compare.png")

    say("scoring the two REAL public TRECVID 2021 runs against the REAL 2021 qrels")
    report.real_scores = score_runs(bundled_runs(), qrels=bundled_qrels("tv21"))
    report.timings["total"] = time.perf_counter() - t0
    return report


def _same_numbers(a: ScoredRun, b: ScoredRun) -> bool:
    """True when two scored runs agree on every per-topic and summary number."""
    from avsbench.eval.sample_eval import format_sample_eval

    if a.result.per_topic.keys() != b.result.per_topic.keys():
        raise EvaluationError("the XML run and the TREC run cover different topics")
    return format_sample_eval(a.result, per_topic=True) == format_sample_eval(b.result, per_topic=True)
