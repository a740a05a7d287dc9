"""What a newcomer must do before ``avsbench rank`` can run, said in one line.

:func:`check_ready_to_rank` looks at the model folder and the collections of the chosen years
before anything heavy is imported, and raises one error that names the next step: train or
import a model, lay out the collection under the data root, check it with ``collection info``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from avsbench.data.root import ROOT_ENV, resolve_root
from avsbench.data.topics import Year
from avsbench.errors import AvsbenchError, ConfigError, MissingDataError

README_SECTION = 'README: "Ranking with a released LAFF model"'
MODEL_STEPS = (
    "train one (`avsbench train --help`) or import a released LAFF checkpoint "
    "(`avsbench model import-laff model_best.pth.tar --out models/laff "
    "--w2v <root>/word2vec/flickr/vec500flickr30m`), "
    f"then pass --model models/laff ({README_SECTION})"
)


def model_problem(model_dir: str | Path | None, command: str = "rank") -> str | None:
    """Why ``model_dir`` cannot be ranked with, with the next step; None when it looks like a model folder."""
    if model_dir is None:
        return f"{command} needs a model folder (--model DIR): " + MODEL_STEPS
    path = Path(model_dir)
    if path.is_file():
        return (
            f"{path} is a file, not a model folder: import a released checkpoint with "
            f"`avsbench model import-laff {path} --out models/laff`, then pass --model models/laff ({README_SECTION})"
        )
    if not path.is_dir():
        return f"model folder {path} not found: " + MODEL_STEPS
    if not (path / "config.json").is_file():
        return f"{path} is not an avsbench model folder (no config.json): " + MODEL_STEPS
    return None


def _model_video_features(model_dir: str | Path | None) -> list[tuple[str, str]]:
    """(name, kind) of the model's video features; empty when the config cannot be read (load_model says why)."""
    from avsbench.model.config import ModelConfig

    if model_problem(model_dir) is not None:
        return []
    try:
        config = ModelConfig.read(Path(str(model_dir)) / "config.json")
    except AvsbenchError:
        return []
    return [(spec.name, spec.kind) for spec in config.video_features]


def _layout(root: Path, name: str) -> str:
    return (
        f"put its shot list at {root / name / 'VideoSets' / (name + '.txt')} and each video feature as a BigFile at "
        f"{root / name / 'FeatureData'}/<feature>/{{feature.bin,id.txt,shape.txt}} (another root: --rootpath or "
        f"${ROOT_ENV}), then check it with `avsbench collection info {name} --rootpath {root}`"
    )


def collection_problem(
    root: Path, name: str, years: Sequence[Year], features: Sequence[tuple[str, str]] = ()
) -> str | None:
    """Why collection ``name`` under ``root`` cannot be ranked, with the next step; None when it looks ready."""
    folder = root / name
    editions = ", ".join(y.key for y in years)
    if not folder.is_dir():
        return f"collection {name!r} (for {editions}) not found under the data root {root}: " + _layout(root, name)
    if not (folder / "VideoSets" / f"{name}.txt").is_file():
        return f"collection {name!r} has no shot list: " + _layout(root, name)
    wanted = [f"frame/{feature}" if kind == "frame" else feature for feature, kind in features]
    missing = [feature for feature in wanted if not (folder / "FeatureData" / feature / "shape.txt").is_file()]
    if missing:
        return f"collection {name!r} lacks the model's feature(s) {', '.join(missing)}: " + _layout(root, name)
    return None


def check_ready_to_rank(
    model_dir: str | Path | None,
    years: Sequence[Year],
    rootpath: str | Path | None = None,
    collection_name: str | None = None,
    command: str = "rank",
) -> None:
    """Raise one error naming what to do next when the model or a collection is missing; return when ready."""
    root = resolve_root(rootpath)
    groups: dict[str, list[Year]] = {}
    for year in years:
        groups.setdefault(collection_name or year.collection, []).append(year)
    features = _model_video_features(model_dir)
    problems = [p for name, group in groups.items() if (p := collection_problem(root, name, group, features))]
    model = model_problem(model_dir, command)
    if model is not None:
        raise ConfigError("; also ".join([model, *problems]))
    if problems:
        raise MissingDataError(
            "; also ".join(problems) + "; to try the whole pipeline on synthetic data first: `avsbench demo`"
        )
