"""``avsbench rank`` for a newcomer: without a model or without the collection it says, in one line,
what to do next (train or import a released model, the data-root layout, ``collection info``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.cli.next_steps import check_ready_to_rank
from avsbench.data.topics import parse_years
from avsbench.errors import ConfigError, MissingDataError
from avsbench.model.config import FeatureSpec, ModelConfig
from tests.hostile import assert_one_clear_error, run_cli_limited, tree_snapshot


def model_folder(path: Path, video: list[tuple[str, int, str]]) -> Path:
    """A model folder with only its config.json (enough for the checks made before loading)."""
    config = ModelConfig(
        video_features=[FeatureSpec(name, dim, kind) for name, dim, kind in video],
        text_features=[FeatureSpec("bow", 10, "bow")],
    )
    path.mkdir(parents=True)
    (path / "config.json").write_text(config.to_json())
    return path


def rank(*args: str, env: dict | None = None):
    return CliRunner(env=env).invoke(main, ["rank", *args])


def one_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Missing option" not in result.output and "Usage:" not in result.output and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("avsbench: error:")]
    assert len(errors) == 1 and result.stderr.strip() == errors[0], result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def test_no_model_says_train_or_import_and_where_the_collection_goes(tmp_path):
    root = tmp_path / "VisualSearch"
    line = one_error(
        rank("--year", "2019", "--rootpath", str(root)),
        "--model",
        "avsbench train",
        "avsbench model import-laff",
        "Ranking with a released LAFF model",
        f"collection 'v3c1' (for 2019) not found under the data root {root}",
        str(root / "v3c1" / "VideoSets" / "v3c1.txt"),
        "FeatureData",
        "feature.bin,id.txt,shape.txt",
        f"avsbench collection info v3c1 --rootpath {root}",
    )
    assert line.index("--model") < line.index("collection 'v3c1'")


def test_no_model_with_the_collection_in_place_speaks_only_of_the_model(small_demo_root):
    line = one_error(rank("--year", "2019", "--rootpath", str(small_demo_root)), "model import-laff", "avsbench train")
    assert "collection" not in line


def test_the_root_comes_from_the_environment_too(tmp_path):
    model = model_folder(tmp_path / "models" / "laff", [("clip", 512, "video")])
    root = tmp_path / "env-root"
    one_error(
        rank("--year", "2019", "--model", str(model), env={"AVSBENCH_ROOT": str(root)}), f"under the data root {root}"
    )


def test_a_checkpoint_file_as_model_says_import_it(tmp_path):
    checkpoint = tmp_path / "model_best.pth.tar"
    checkpoint.write_bytes(b"not read")
    one_error(
        rank("--year", "2019", "--model", str(checkpoint), "--rootpath", str(tmp_path)),
        f"{checkpoint} is a file, not a model folder",
        f"avsbench model import-laff {checkpoint} --out models/laff",
    )


@pytest.mark.parametrize("make", ["absent", "empty"])
def test_a_folder_that_is_not_a_model_says_train_or_import(tmp_path, make):
    folder = tmp_path / "models" / "x"
    if make == "empty":
        folder.mkdir(parents=True)
    one_error(
        rank("--year", "2019", "--model", str(folder), "--rootpath", str(tmp_path)), str(folder), "model import-laff"
    )


def test_collection_without_shot_list_or_model_features_says_what_is_missing(tmp_path):
    root = tmp_path / "root"
    (root / "v3c1" / "TextData").mkdir(parents=True)  # e.g. only qrels fetched so far
    model = model_folder(
        tmp_path / "m", [("clip_ft", 512, "video"), ("clip_frames", 512, "frame"), ("x3d", 2048, "video")]
    )
    one_error(
        rank("--year", "2019", "--model", str(model), "--rootpath", str(root)),
        "has no shot list",
        "collection info v3c1",
    )

    (root / "v3c1" / "VideoSets").mkdir()
    (root / "v3c1" / "VideoSets" / "v3c1.txt").write_text("shot00001_1\n")
    (root / "v3c1" / "FeatureData" / "x3d").mkdir(parents=True)
    (root / "v3c1" / "FeatureData" / "x3d" / "shape.txt").write_text("1 2048")
    one_error(
        rank("--year", "2019", "--model", str(model), "--rootpath", str(root)),
        "lacks the model's feature(s) clip_ft, frame/clip_frames",
        str(root / "v3c1" / "FeatureData"),
        "avsbench demo",
    )


def test_ready_model_and_collection_pass_the_check(small_demo_root, tmp_path):
    model = model_folder(tmp_path / "m", [("demo_partial768", 768, "video"), ("demo_clip512", 512, "frame")])
    check_ready_to_rank(model, parse_years("2019,2020"), small_demo_root)
    other = model_folder(tmp_path / "other", [("x3d", 2048, "video")])
    with pytest.raises(MissingDataError, match="lacks the model's feature\\(s\\) x3d"):
        check_ready_to_rank(other, parse_years("2019"), small_demo_root)
    with pytest.raises(MissingDataError, match="'iacc.3' \\(for 2016\\)"):
        check_ready_to_rank(model, parse_years("2016"), small_demo_root)
    with pytest.raises(ConfigError, match="rank needs a model folder"):
        check_ready_to_rank(None, parse_years("2019"), small_demo_root)


def test_in_a_child_process_under_a_memory_limit_nothing_is_written(tmp_path):
    before = tree_snapshot(tmp_path)
    done = run_cli_limited(
        ["rank", "--year", "2019", "--rootpath", str(tmp_path / "root"), "--out", str(tmp_path / "runs")], cwd=tmp_path
    )
    assert_one_clear_error(done, "model import-laff", "collection info v3c1")
    assert tree_snapshot(tmp_path) == before and not (tmp_path / "runs").exists()


def test_collection_info_on_a_missing_collection_names_the_layout(tmp_path):
    result = CliRunner().invoke(main, ["collection", "info", "v3c1", "--rootpath", str(tmp_path)])
    one_error(result, f"not found under the data root {tmp_path}", "VideoSets/v3c1.txt", "feature.bin,id.txt,shape.txt")


def test_explain_without_a_model_says_what_to_do_next(tmp_path):
    root = tmp_path / "VisualSearch"
    result = CliRunner().invoke(main, ["explain", "--year", "2019", "--topic", "611", "--rootpath", str(root)])
    one_error(result, "explain needs a model folder (--model DIR)", "avsbench model import-laff", "collection 'v3c1'")
