"""``avsbench demo``: the whole pipeline on the synthetic demo collection, then the real 2021 runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from avsbench.cli.options import rootpath_option

if TYPE_CHECKING:
    from rich.console import Console

    from avsbench.demo_pipeline import DemoReport


@click.command()
@click.option(
    "--year", default="2019", show_default=True, help="AVS year whose REAL topics the demo ranks (2016..2021)."
)
@click.option("--quick", is_flag=True, help="A smaller collection and fewer epochs (about a minute on 2 cores).")
@rootpath_option("Where the demo collection is generated (default: the user's cache folder; not ${env}).", envvar=False)
@click.option(
    "--out", "out_dir", default="runs/demo", show_default=True, help="Folder for the models, runs, XML and plot."
)
def demo(year: str, quick: bool, rootpath: str | None, out_dir: str) -> None:
    """Generate, train, rank, submit, score and compare on the SYNTHETIC demo collection."""
    from rich.console import Console

    from avsbench.demo_pipeline import run_demo
    from avsbench.progress import progress_bars

    console = Console()
    interactive = sys.stdout.isatty()

    def say(message: str) -> None:
        console.print(f"[bold cyan]>[/] {message}")

    with progress_bars(interactive, remove_finished=True) as bars:
        report = run_demo(year, quick=quick, rootpath=rootpath, out_dir=out_dir, progress=bars, say=say)

    console.rule("[bold]SYNTHETIC demo collection[/] (generated; no number below it says anything about real data)")
    console.print(
        f"root: {report.root}   year: {report.year.edition} (REAL topic texts, SYNTHETIC shots, features and qrels)"
    )
    _print_validation(console, report)
    _print_weights(console, report)
    _print_synthetic_runs(console, report)
    _print_real_runs(console, report)
    if report.xml_problems or not report.trec_vs_xml_identical:
        sys.exit(1)


def _print_validation(console: Console, report: DemoReport) -> None:
    """The validation table: each model's text-to-video retrieval metrics on demoval."""
    from rich.table import Table

    val = Table(title="Validation on demoval (SYNTHETIC): text-to-video retrieval")
    for col in ("model", "R@1", "R@5", "R@10", "medr", "mir", "train s"):
        val.add_column(col, justify="left" if col == "model" else "right")
    for m in report.models:
        v = m.val_metrics
        val.add_row(
            m.name,
            f"{v.get('r1', 0):.2f}",
            f"{v.get('r5', 0):.2f}",
            f"{v.get('r10', 0):.2f}",
            f"{v.get('medr', 0):.0f}",
            f"{v.get('mir', 0):.4f}",
            f"{m.train_seconds:.1f}",
        )
    console.print(val)


def _print_weights(console: Console, report: DemoReport) -> None:
    """LAFF's learned feature weights and whether their order matches the known quality order."""
    from rich.table import Table

    from avsbench.demo_pipeline import VIDEO_FEATURES

    weights = Table(title="LAFF's learned video-feature weights (mean attention, SYNTHETIC)")
    weights.add_column("feature")
    weights.add_column("known quality rank", justify="right")
    weights.add_column("mean weight", justify="right")
    for rank, name in enumerate(VIDEO_FEATURES, 1):
        weights.add_row(name, str(rank), f"{report.feature_weights.get(name, float('nan')):.3f}")
    console.print(weights)
    learned = sorted(report.feature_weights, key=lambda n: -report.feature_weights[n])
    verdict = "matches" if learned == list(VIDEO_FEATURES) else "does NOT match"
    console.print(f"learned order {' > '.join(learned)} {verdict} the known quality order")


def _print_synthetic_runs(console: Console, report: DemoReport) -> None:
    """The comparison of the runs on the SYNTHETIC qrels, the XML check and the plot's path."""
    console.print(f"\n[bold]Runs on the {report.year.edition} topics, scored against SYNTHETIC qrels[/]")
    if report.comparison is not None:
        report.comparison.print(per_topic=False, console=console)
    xml_state = (
        "valid"
        if not report.xml_problems
        else f"{len(report.xml_problems)} problem(s): " + "; ".join(report.xml_problems[:3])
    )
    console.print(
        f"official XML: {report.xml_path} ({xml_state}); scoring it gives the TREC run's numbers: "
        f"{'yes' if report.trec_vs_xml_identical else 'NO'}"
    )
    if report.plot_path:
        console.print(f"plot: {report.plot_path}")


def _print_real_runs(console: Console, report: DemoReport) -> None:
    """The scores of the REAL 2021 runs and the time each step took."""
    from avsbench.report.score_output import score_tables
    from avsbench.report.tables import print_tables

    console.rule("[bold]REAL data[/]: the two public TRECVID 2021 runs against NIST's official 2021 qrels")
    print_tables(score_tables(report.real_scores), console=console)
    t = report.timings
    console.print(
        f"done in {t['total']:.0f} s (generate {t['generate']:.0f} s, train {t['train']:.0f} s, rank {t['rank']:.0f} "
        f"s, score {t['score']:.0f} s)"
    )
