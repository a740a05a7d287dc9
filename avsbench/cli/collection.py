"""``avsbench collection``: inspect a collection (``info``) or generate the synthetic demo (``demo``)."""

from __future__ import annotations

import time
from typing import Any

import click

from avsbench.cli.options import rootpath_from_command_line, rootpath_option
from avsbench.data.collection import Collection, CollectionSummary, summarize
from avsbench.data.root import demo_root, resolve_root

SYNTHETIC_BANNER = "SYNTHETIC: generated demo data, not real video features or real judgments"


def _size(nbytes: int) -> str:
    if nbytes < 1024:
        return f"{nbytes} B"
    value, unit = nbytes / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def render_summary(summary: CollectionSummary) -> list[str]:
    """The lines ``collection info`` prints."""
    lines = [f"collection {summary.name}  ({summary.path})"]
    if summary.synthetic:
        lines.append(f"  *** {SYNTHETIC_BANNER} ***")
    if summary.shots is not None:
        dropped = f", {summary.dropped_in_list:,} of them dropped by NIST" if summary.dropped_in_list else ""
        lines.append(f"shots: {summary.shots:,}{dropped}")
    for kind, title in (
        ("video", "video features"),
        ("frame", "frame features (FeatureData/frame)"),
        ("text", "text features (TextData)"),
    ):
        infos = [f for f in summary.features if f.kind == kind]
        if not infos:
            continue
        lines.append(f"{title}:")
        for f in infos:
            shape = f"{f.nrows:,} x {f.dim}" if f.nrows is not None else "unreadable"
            lines.append(f"  {f.name:<40} {shape:>18}  {_size(f.size_bytes):>10}")
    if summary.captions is not None:
        lines.append(f"captions: {summary.captions:,} for {summary.caption_videos:,} videos")
    if summary.topic_files:
        lines.append("topics: " + ", ".join(f"{edition} ({n})" for edition, _, n in summary.topic_files))
    manifest_stats = (summary.manifest or {}).get("collections", {}).get(summary.name, {}).get("editions", {})
    for q in summary.qrels:
        lo, med, hi = q.estimated_relevant
        lines.append(f"qrels {q.edition}: {q.path}")
        lines.append(
            f"  {q.topics} topics, pool {q.pool_size_mean:,.0f} shots/topic, estimated relevant/topic min {lo:.0f} "
            f"median {med:.0f} max {hi:.0f}"
        )
        truth = manifest_stats.get(q.edition)
        if truth:
            rel = truth["relevant_per_topic"]
            lines.append(
                f"  true relevant shots/topic (generator): min {rel['min']} median {rel['median']:g} max {rel['max']}"
            )
        for stratum, pooled, sampled, relevant in q.strata:
            fraction = sampled / pooled if pooled else 0.0
            lines.append(
                f"  stratum {stratum}: {pooled:,} pooled, {sampled:,} sampled ({fraction:.0%}), {relevant:,} judged "
                f"relevant"
            )
    if not summary.qrels and summary.topic_files:
        lines.append("qrels: none found (TextData/avs.qrels.<edition>)")
    if summary.problems:
        lines.append("problems:")
        lines.extend(f"  - {p}" for p in summary.problems)
    else:
        lines.append("problems: none")
    return lines


@click.group()
def collection() -> None:
    """Inspect collections under the data root; generate the synthetic demo."""


@collection.command()
@click.argument("name")
@rootpath_option()
@click.option("--demo", "use_demo", is_flag=True, help="Look in the generated demo root instead.")
@click.pass_context
def info(ctx: click.Context, name: str, rootpath: str | None, use_demo: bool) -> None:
    """Show shots, features, captions, topics, qrels and problems of collection NAME."""
    root = demo_root() if use_demo and not rootpath_from_command_line(ctx) else resolve_root(rootpath)
    summary = summarize(Collection(root, name))
    for line in render_summary(summary):
        click.echo(line)
    if summary.problems:
        raise SystemExit(1)


@collection.command()
@rootpath_option("Where to write the demo (default: avsbench's cache folder; not ${env}).", envvar=False)
@click.option("--shots", "n_shots", type=int, default=None, help="Shots per test collection (default 30,000).")
@click.option("--seed", type=int, default=None, help="Random seed (default 2021).")
@click.option(
    "--years",
    default="2019",
    show_default=True,
    help="AVS years whose collections to make (2016-2018: iacc.3, 2019-2021: v3c1).",
)
@click.option("--train-videos", type=int, default=None, help="Videos in demotrain (default 6,000).")
@click.option("--feature-dims", default=None, help="Comma-separated video feature dims, e.g. 512,2048,2048,2048.")
@click.option("--no-frames", is_flag=True, help="Skip the frame-level feature.")
def demo(
    rootpath: str | None,
    n_shots: int | None,
    seed: int | None,
    years: str,
    train_videos: int | None,
    feature_dims: str | None,
    no_frames: bool,
) -> None:
    """Generate the synthetic demo collections (deterministic from the seed)."""
    from avsbench.data import synthetic
    from avsbench.errors import ConfigError

    dims = None
    if feature_dims:
        try:
            dims = [int(d) for d in feature_dims.split(",") if d.strip()]
        except ValueError:
            raise ConfigError(f"--feature-dims {feature_dims!r}", expected="comma-separated integers") from None
    params: dict[str, Any] = {
        "collections": synthetic.collections_for_years(years.split(",")),
        "feature_dims": dims,
        "frame_features": not no_frames,
    }
    for key, value in (("n_shots", n_shots), ("seed", seed), ("n_train_videos", train_videos)):
        if value is not None:
            params[key] = value
    root = resolve_root(rootpath) if rootpath else demo_root()
    started = time.perf_counter()
    manifest = synthetic.generate_demo(root, **params)
    click.echo(f"{SYNTHETIC_BANNER}")
    click.echo(f"generated in {time.perf_counter() - started:.1f} s under {root}:")
    for name, info_ in manifest["collections"].items():
        extra = f", {info_['captions']:,} captions" if "captions" in info_ else ""
        click.echo(
            f"  {name}: {info_['shots']:,} shots{extra}; features "
            + ", ".join(f"{n} ({d})" for n, d in info_["features"].items())
        )
    click.echo(f"see: avsbench collection info {manifest['params']['collections'][0]} --rootpath {root}")
