"""``avsbench rank``: rank every shot of a collection for the topics of one or more years."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from avsbench.cli.next_steps import check_ready_to_rank
from avsbench.cli.options import clip_text_options, clip_warnings_as_lines, rootpath_option
from avsbench.data.topics import parse_years
from avsbench.extras import require_extra
from avsbench.progress import progress_bars

if TYPE_CHECKING:
    from avsbench.ranking.pipeline import RankReport


@click.command()
@click.option(
    "--year",
    "years",
    required=True,
    help="Year(s) sharing a collection are ranked in one pass, e.g. 2019,2020,2021,progress.",
)
@click.option(
    "--model",
    "model_dir",
    default=None,
    type=click.Path(),
    help="Model folder (config.json + weights.safetensors): trained, or imported with `model import-laff`.",
)
@rootpath_option()
@click.option(
    "--collection", "collection_name", default=None, help="Collection to rank (default: the year's, iacc.3 or v3c1)."
)
@click.option(
    "--topics",
    "topic_groups",
    default="main",
    show_default=True,
    help="main and/or progress (591-610, with a V3C1 year).",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "int8"]),
    default="auto",
    show_default=True,
    help="bf16 / int8 (CPU): a bf16 or int8 first pass, then the best candidates re-scored in fp32, so the runs equal "
    "fp32's. "
    "auto: on a CPU bf16 with AMX, else int8; fp32 on a GPU (I/O-bound there).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Shots per encoder call (default 1024 on CPU, 16384 on CUDA).",
)
@click.option("--top-k", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--rescore-margin",
    type=click.IntRange(min=0),
    default=None,
    help="bf16/int8: extra candidates kept per topic for re-scoring in fp32 (default: top-k).",
)
@click.option("--out", "out_dir", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--run-id", default=None, help="Run tag and file name stem (default: the model folder's name).")
@click.option(
    "--cache",
    "cache_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Embedding cache folder (re-ranking new queries skips encoding).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--no-score", is_flag=True, help="Do not score the runs even when qrels are found.")
@clip_text_options()
def rank(
    years: str,
    model_dir: str,
    rootpath: str | None,
    collection_name: str | None,
    topic_groups: str,
    device: str,
    precision: str,
    batch_size: int | None,
    top_k: int,
    rescore_margin: int | None,
    out_dir: str,
    run_id: str | None,
    cache_dir: str | None,
    seed: int,
    no_score: bool,
    clip_text: str,
    clip_truncation: str,
) -> None:
    """Rank every shot of a collection for the topics of one or more AVS years; write TREC runs."""
    require_extra("model")
    check_ready_to_rank(model_dir, parse_years(years), rootpath, collection_name)
    from avsbench.ranking.pipeline import rank_years, select_years
    from avsbench.ranking.precision import RankSettings

    chosen = select_years(parse_years(years), [g.strip() for g in topic_groups.split(",") if g.strip()])
    settings = RankSettings(
        top_k=top_k, precision=precision, device=device, batch_size=batch_size, rescore_margin=rescore_margin
    )
    _note_slow_bf16(precision, device)
    with clip_warnings_as_lines(), progress_bars(unit="shots", transient=False) as progress:
        report = rank_years(
            chosen,
            model_dir,
            settings=settings,
            rootpath=rootpath,
            collection_name=collection_name,
            out_dir=out_dir,
            run_id=run_id,
            cache_dir=cache_dir,
            seed=seed,
            progress=progress,
            clip_text=clip_text,
            clip_truncation=clip_truncation,
        )
    _echo_outcomes(report)
    _echo_runs(report, no_score)


def _note_slow_bf16(precision: str, device: str) -> None:
    """Warn when bf16 was asked for on a CPU without bf16 units."""
    from avsbench.ranking.precision import cpu_has_fast_bf16, resolve_device

    if precision == "bf16" and resolve_device(device).type == "cpu" and not cpu_has_fast_bf16():
        click.echo(
            "note: this CPU has no AMX/AVX512-BF16 units: bf16 GEMMs run several times slower than fp32 (int8 or auto "
            "is faster)",
            err=True,
        )


def _echo_outcomes(report: RankReport) -> None:
    """One line per collection ranked: text sources, speed, device and precision, and re-scoring notes."""
    for name, outcome in report.outcomes.items():
        for source in report.text_sources.get(name, []):
            how = "online, " + source["truncation"] + " truncation" if source["source"] == "online" else source["path"]
            click.echo(f"{name}: text feature {source['feature']}: {how} ({source['why']})")
        cached = " (embeddings from cache)" if report.cache_hits.get(name) else ""
        click.echo(
            f"{name}: {outcome.shots:,} shots in {outcome.seconds:.1f} s ({outcome.shots_per_second:,.0f} shots/s), "
            f"{outcome.device}, {outcome.precision}{cached}"
        )
        if outcome.precision in ("bf16", "int8"):
            click.echo(
                f"  {outcome.precision}: {outcome.rescored_shots:,} candidate shots re-scored in fp32 (max score "
                f"error {outcome.max_screen_error:.2e})"
            )
            if outcome.uncertified_topics:
                click.echo(
                    f"  note: {len(outcome.uncertified_topics)} topic(s) could not be certified from the "
                    f"{outcome.precision} candidates and were "
                    "ranked again in fp32 (a larger --rescore-margin avoids the extra pass)",
                    err=True,
                )


def _echo_runs(report: RankReport, no_score: bool) -> None:
    """One line per run written, with its infAP when qrels were found and scoring was not turned off."""
    for run in report.runs:
        if no_score:
            measure = "not scored"
        elif run.qrels_path is None:
            measure = "no qrels"
        else:
            from avsbench.eval.scoring import score_runs

            measure = f"infAP {score_runs([run.run_path], qrels=run.qrels_path)[0].result.inf_ap:.4f}"
            if run.synthetic:
                measure += ", SYNTHETIC demo collection"
        click.echo(f"{run.year.edition}: {len(run.topics)} topics -> {run.run_path}  [{measure}]")
