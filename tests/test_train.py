"""Training: loss, metrics, a short run on a small generated demo, resume, CLI, explanations."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avsbench.errors import ConfigError, MissingDataError
from avsbench.model.checkpoint import check_collection_features, load_model
from avsbench.model.train import (
    DEMO_SETTINGS,
    TrainSettings,
    parse_text_features,
    parse_video_features,
    rank_metrics,
    train_model,
    triplet_loss,
)

FEATURES = "demo_clip512,demo_partial768,demo_noisy1024"
TINY = dataclasses.replace(DEMO_SETTINGS, epochs=2, common_dim=64, heads=2, batch_size=64, gru_hidden=32)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small models train fastest on one thread, and CI boxes running tests in parallel oversubscribe OpenMP."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    from avsbench.data.synthetic import generate_demo

    root = tmp_path_factory.mktemp("demo")
    generate_demo(root, n_shots=300, n_train_videos=300, n_val_videos=60)
    return root


@pytest.fixture(scope="module")
def trained(demo_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "laff"
    train_model(
        "demotrain",
        FEATURES,
        "bow,w2v,gru,clip:demo_clip512",
        val_collection="demoval",
        settings=TINY,
        rootpath=demo_root,
        out_dir=out,
        progress=False,
    )
    return out


def test_triplet_loss_hardest_negative_per_head():
    text = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # 2 captions, 1 head
    video = torch.tensor([[[0.8, 0.6]], [[0.6, 0.8]]])
    # caption 0: positive 0.8, negative 0.6 -> 0.2 + 0.6 - 0.8 = 0; caption 1: positive 0.8, negative 0.6 -> 0
    assert float(triplet_loss(text, video, torch.tensor([0, 1]), 0.2)) == pytest.approx(0.0, abs=1e-6)
    assert float(triplet_loss(text, video, torch.tensor([0, 1]), 0.5)) == pytest.approx(0.6, abs=1e-6)
    # the same video twice in the batch is not a negative
    assert float(triplet_loss(text, video, torch.tensor([3, 3]), 0.5)) == 0.0
    two_heads = torch.cat([text, text], dim=1), torch.cat([video, video], dim=1)
    assert float(triplet_loss(*two_heads, torch.tensor([0, 1]), 0.5)) == pytest.approx(1.2, abs=1e-6)


def test_rank_metrics():
    metrics = rank_metrics(torch.tensor([1, 2, 5, 20]))
    assert metrics["r1"] == 25.0 and metrics["r5"] == 75.0 and metrics["r10"] == 75.0
    assert metrics["medr"] == 2.0
    assert metrics["mir"] == pytest.approx((1 + 0.5 + 0.2 + 0.05) / 4)


def test_feature_lists_are_parsed():
    assert parse_text_features("clip:c,bow,gru") == [("gru", "gru"), ("bow", "bow"), ("precomputed", "c")]
    assert parse_video_features("a,frame:b") == [("video", "a"), ("frame", "b")]
    with pytest.raises(ConfigError):
        parse_text_features("bow,bert")
    with pytest.raises(ConfigError, match="unknown training setting"):
        TrainSettings().updated({"epoch": 3})


def test_training_writes_a_loadable_model(trained, demo_root):
    loaded = load_model(trained, "cpu", rootpath=demo_root)
    config = loaded.config
    assert [s.name for s in config.video_features] == FEATURES.split(",")
    assert [s.kind for s in config.text_features] == ["gru", "bow", "w2v", "precomputed"]
    assert (config.common_dim, config.heads) == (64, 2)
    assert config.metrics["best_epoch"] in (1, 2) and 0 < config.metrics["val"]["mir"] <= 1
    assert len(config.metrics["history"]) == 2
    assert not any(p.name.endswith(".pkl") for p in trained.iterdir())
    from avsbench.cli import main

    info = CliRunner().invoke(main, ["model", "info", str(trained)])
    assert info.exit_code == 0 and "validation (best epoch" in info.output and "demo_partial768" in info.output
    json.loads((trained / "config.json").read_text())
    check_collection_features(config, demo_root / "demoval")
    with pytest.raises(MissingDataError, match="demo_noisy1024"):
        import shutil

        broken = demo_root / "broken"
        shutil.copytree(demo_root / "demoval", broken)
        shutil.rmtree(broken / "FeatureData" / "demo_noisy1024")
        check_collection_features(config, broken)
    # the loaded model computes the same validation ranking quality
    from avsbench.data.collection import Collection
    from avsbench.model.train import prepare_split, retrieval_metrics

    data = prepare_split(Collection(demo_root, "demoval"), loaded.text_pipeline, torch.device("cpu"), config.max_frames)
    assert retrieval_metrics(loaded.model, data)["mir"] == pytest.approx(config.metrics["val"]["mir"], abs=1e-6)


def test_resume_continues_where_it_stopped(demo_root, tmp_path):
    settings = dataclasses.replace(TINY, epochs=1)
    common = dict(val_collection="demoval", rootpath=demo_root, progress=False)
    train_model(
        "demotrain",
        "demo_clip512,demo_partial768",
        "bow,clip:demo_clip512",
        settings=settings,
        out_dir=tmp_path / "a",
        **common,
    )
    resumed = train_model(
        "demotrain",
        "demo_clip512,demo_partial768",
        "bow,clip:demo_clip512",
        settings=dataclasses.replace(settings, epochs=2),
        out_dir=tmp_path / "a",
        resume=True,
        **common,
    )
    straight = train_model(
        "demotrain",
        "demo_clip512,demo_partial768",
        "bow,clip:demo_clip512",
        settings=dataclasses.replace(settings, epochs=2),
        **common,
    )
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[1]["loss"] == pytest.approx(straight.history[1]["loss"], rel=1e-5)
    assert resumed.history[1]["mir"] == pytest.approx(straight.history[1]["mir"], abs=1e-6)


def test_laff_ml_frame_feature_trains(demo_root, tmp_path):
    result = train_model(
        "demotrain",
        "frame:demo_clip512,demo_noisy1024",
        "bow,clip:demo_clip512",
        val_collection="demoval",
        settings=dataclasses.replace(TINY, epochs=1),
        rootpath=demo_root,
        out_dir=tmp_path / "ml",
        progress=False,
    )
    loaded = load_model(tmp_path / "ml")
    assert [s.kind for s in loaded.config.video_features] == ["frame", "video"]
    assert result.best_metrics["mir"] > 0


def test_cli_train_and_errors(demo_root, tmp_path):
    from avsbench.cli import main

    runner = CliRunner()
    args = [
        "train",
        "--train-collection",
        "demotrain",
        "--val-collection",
        "demoval",
        "--rootpath",
        str(demo_root),
        "--demo-settings",
        "--epochs",
        "1",
    ]
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"common_dim": 32, "heads": 2}))
    result = runner.invoke(
        main,
        [
            *args,
            "--video-features",
            "demo_clip512",
            "--text-features",
            "bow,clip:demo_clip512",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best epoch 1" in result.output
    assert load_model(tmp_path / "m").config.common_dim == 32
    bad = runner.invoke(main, [*args, "--video-features", "no_such_feature", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "no_such_feature" in bad.output and "Traceback" not in bad.output
    config.write_text(json.dumps({"epoch": 3}))
    bad_config = runner.invoke(main, [*args, "--video-features", "demo_clip512", "--config", str(config)])
    assert bad_config.exit_code == 2 and "unknown training setting" in bad_config.output


def test_explain_topic_and_cli(trained, demo_root):
    from avsbench.cli import main
    from avsbench.model.explain import average_attention, explain_topic

    loaded = load_model(trained, rootpath=demo_root)
    result = explain_topic(loaded, 2019, 611, top=5, rootpath=demo_root)
    assert result.query and len(result.shots) == 5
    assert result.text_weights.shape == (2, 4)
    np.testing.assert_allclose(result.text_weights.sum(axis=1), 1.0, atol=1e-5)
    scores = [s.score for s in result.shots]
    assert scores == sorted(scores, reverse=True)
    for shot in result.shots:
        np.testing.assert_allclose(shot.weights.sum(axis=1), 1.0, atol=1e-5)
    assert result.average_video_weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert result.n_shots_scanned > 0
    texts = loaded.text_pipeline.featurize(
        ["a dog running", "people dancing"], ["q1", "q2"], {"demo_clip512": _topic_clip(demo_root)}
    )
    text_average = average_attention(loaded.model, texts, "text")
    assert text_average.shape == (4,) and text_average.sum() == pytest.approx(1.0, abs=1e-5)
    out = CliRunner().invoke(
        main,
        [
            "explain",
            "--model",
            str(trained),
            "--year",
            "2019",
            "--topic",
            "611",
            "--top",
            "3",
            "--rootpath",
            str(demo_root),
        ],
    )
    assert out.exit_code == 0, out.output
    assert result.query in out.output and "demo_noisy1024" in out.output and result.shots[0].shot_id in out.output
    bad = CliRunner().invoke(
        main, ["explain", "--model", str(trained), "--year", "2019", "--topic", "999", "--rootpath", str(demo_root)]
    )
    assert bad.exit_code == 2 and "999" in bad.output
    # the run/qrels id that score prints names the same topic (issue 11, item 16)
    same = CliRunner().invoke(
        main,
        [
            "explain",
            "--model",
            str(trained),
            "--year",
            "2019",
            "--topic",
            "1611",
            "--top",
            "3",
            "--rootpath",
            str(demo_root),
        ],
    )
    assert same.exit_code == 0 and same.output == out.output
    assert [s.shot_id for s in explain_topic(loaded, 2019, "1611", top=5, rootpath=demo_root).shots] == [
        s.shot_id for s in result.shots
    ]


def _topic_clip(demo_root: Path):
    from avsbench.data.bigfile import BigFile

    clip = BigFile(demo_root / "demotrain" / "TextData" / "demo_clip512")
    return BigFile.write(demo_root / "queries_clip", ["q1", "q2"], clip.read_rows([0, 1]))


@pytest.mark.slow
def test_demo_laff_beats_baselines_and_orders_features(tmp_path_factory):
    """Demo acceptance on a reduced demo: LAFF > best single feature and > mean fusion; attention follows quality."""
    from avsbench.data.synthetic import generate_demo
    from avsbench.model.fusion_study import compare_fusion

    root = tmp_path_factory.mktemp("demo_compare")
    generate_demo(root, n_shots=300, n_train_videos=1000, n_val_videos=200)
    result = compare_fusion(
        "demotrain",
        "demoval",
        FEATURES,
        "bow,w2v,clip:demo_clip512",
        settings=dataclasses.replace(DEMO_SETTINGS, epochs=3),
        rootpath=root,
    )
    assert result.laff_beats_baselines, (result.laff, result.mean_fusion, result.singles)
    assert result.features_by_weight == FEATURES.split(",")


def test_interrupted_training_marks_the_model_folder_incomplete(demo_root, tmp_path, monkeypatch):
    """Issue 11 item 5: a run killed after epoch 1 of 3 is reported as incomplete on load and by model info."""
    from avsbench.cli import main
    from avsbench.model import train as train_module
    from avsbench.model.checkpoint import IncompleteModelWarning

    real_epoch = train_module._train_epoch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train_epoch", interrupted)
    settings = dataclasses.replace(TINY, epochs=3, early_stop_patience=5)
    common = dict(val_collection="demoval", rootpath=demo_root, progress=False, out_dir=tmp_path / "m")
    with pytest.raises(KeyboardInterrupt):
        train_model("demotrain", "demo_clip512", "bow,clip:demo_clip512", settings=settings, **common)
    with pytest.warns(IncompleteModelWarning, match="did not finish"):
        assert load_model(tmp_path / "m").config.complete is False
    info = CliRunner().invoke(main, ["model", "info", str(tmp_path / "m")])
    assert info.exit_code == 0 and "best epoch 1 of 1 trained, 3 configured (incomplete)" in info.output, info.output
    monkeypatch.setattr(train_module, "_train_epoch", real_epoch)
    train_model("demotrain", "demo_clip512", "bow,clip:demo_clip512", settings=settings, resume=True, **common)
    assert load_model(tmp_path / "m").config.complete is True
    info = CliRunner().invoke(main, ["model", "info", str(tmp_path / "m")])
    assert "of 3 trained, 3 configured" in info.output and "incomplete" not in info.output
