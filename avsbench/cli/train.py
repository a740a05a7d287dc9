"""``avsbench train``: train a LAFF model on a captioned collection."""

from __future__ import annotations

from pathlib import Path

import click

from avsbench.cli.options import clip_text_options, clip_warnings_as_lines, rootpath_option


@click.command()
@click.option("--train-collection", required=True, help="Captioned training collection (TextData/<name>.caption.txt).")
@click.option("--val-collection", default=None, help="Validation collection (captioned); picks the best epoch.")
@click.option(
    "--video-features", required=True, help="Comma-separated video features; frame:<name> for a LAFF-ml frame feature."
)
@click.option(
    "--text-features",
    default="bow,w2v",
    show_default=True,
    help="Comma-separated: bow, w2v, gru, clip:<TextData feature>.",
)
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), default=None, help="JSON file of training settings."
)
@click.option("--demo-settings", is_flag=True, help="Start from the small demo settings instead of the reference's.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Model folder to write (default: runs/models/<train>_<features>).",
)
@rootpath_option()
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--seed", type=int, default=None)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option(
    "--threads",
    type=int,
    default=None,
    help="torch threads while training on CPU (default: the settings' cpu_threads, else torch's choice).",
)
@clip_text_options()
@click.option(
    "--clip-weights",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="CLIP text tower for online CLIP caption features (a LAFF checkpoint or a fine-tuned CLIP file); "
    "it is stored in the model folder.",
)
def train(
    train_collection: str,
    val_collection: str | None,
    video_features: str,
    text_features: str,
    config_file: Path | None,
    demo_settings: bool,
    out_dir: Path | None,
    rootpath: str | None,
    epochs: int | None,
    batch_size: int | None,
    device: str,
    seed: int | None,
    resume: bool,
    threads: int | None,
    clip_text: str,
    clip_truncation: str,
    clip_weights: Path | None,
) -> None:
    """Train LAFF (hardest-negative triplet loss, RMSprop, early stopping on the validation mir)."""
    from avsbench.model.train import DEMO_SETTINGS, TrainSettings, train_model
    from avsbench.progress import progress_bars

    settings = DEMO_SETTINGS if demo_settings else TrainSettings()
    if config_file is not None:
        settings = TrainSettings.from_json(config_file, base=settings)
    overrides: dict[str, object] = {
        k: v
        for k, v in {"epochs": epochs, "batch_size": batch_size, "seed": seed, "cpu_threads": threads}.items()
        if v is not None
    }
    overrides.update(_clip_overrides(clip_text, clip_truncation, clip_weights))
    settings = settings.updated(overrides)
    if out_dir is None:
        out_dir = Path("runs") / "models" / f"{train_collection}_{video_features.replace(',', '+').replace(':', '-')}"
    with clip_warnings_as_lines(), progress_bars(remove_finished=True) as bars:
        result = train_model(
            train_collection,
            video_features,
            text_features,
            val_collection=val_collection,
            settings=settings,
            rootpath=rootpath,
            out_dir=out_dir,
            device=device,
            resume=resume,
            progress=bars,
            log=bars.log if bars else None,
        )
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in result.best_metrics.items())
    click.echo(
        f"trained in {result.seconds:.1f}s ({result.captions_per_second:,.0f} captions/s); best epoch "
        f"{result.best_epoch}" + (f": {metrics}" if metrics else "") + f"; model in {out_dir}"
    )


def _clip_overrides(clip_text: str, clip_truncation: str, clip_weights: Path | None) -> dict[str, str]:
    """The CLIP options typed on the command line (they override the --config file's)."""
    context = click.get_current_context()
    typed = {
        name: value
        for name, value in (("clip_text", clip_text), ("clip_truncation", clip_truncation))
        if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    }
    if clip_weights is not None:
        typed["clip_weights"] = str(clip_weights.expanduser().resolve())
    return typed
