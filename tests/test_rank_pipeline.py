"""`avsbench rank` end to end on a small generated demo collection, and the submit/validate/score round trip."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data.bigfile import BigFile
from avsbench.data.qrels import Qrels
from avsbench.data.resources import v3c1_dropped_shots
from avsbench.data.runs import RunFile
from avsbench.data.synthetic import generate_demo
from avsbench.eval.sample_eval import evaluate
from avsbench.model.checkpoint import save_model
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel
from avsbench.ranking.precision import cpu_has_fast_bf16

N_SHOTS = 1500
FEATURES = [("demo_clip512", 512), ("demo_partial768", 768), ("demo_noisy1024", 1024)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A 1,500-shot synthetic V3C1 with the 8 dropped shots appended (copies of rows 0..7)."""
    root = tmp_path_factory.mktemp("demo")
    generate_demo(root, n_shots=N_SHOTS, n_train_videos=10, n_val_videos=10, frame_features=True)
    coll = root / "v3c1"
    shots = (coll / "VideoSets" / "v3c1.txt").read_text().split()
    dropped = sorted(v3c1_dropped_shots())
    (coll / "VideoSets" / "v3c1.txt").write_text("\n".join(shots + dropped) + "\n")
    for name, _ in FEATURES:
        bf = BigFile(coll / "FeatureData" / name)
        matrix = bf.read(shots)
        BigFile.write(coll / "FeatureData" / name, shots + dropped, np.vstack([matrix, matrix[: len(dropped)]]))
    torch.manual_seed(0)
    config = ModelConfig(
        video_features=[
            FeatureSpec(n, d, "video", transform="tile" if d == 512 else "linear", dropout=0.0 if d == 512 else 0.2)
            for n, d in FEATURES
        ],
        text_features=[FeatureSpec("demo_clip512", 512, "precomputed", transform="tile", dropout=0.0)],
        common_dim=1024,
        heads=2,
    )
    model_dir = save_model(root / "model", LaffModel(config).eval())
    return root, model_dir, shots, dropped


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def read_lines(path):
    return [line.split() for line in path.read_text().splitlines()]


def test_rank_several_years_in_one_pass(demo, tmp_path):
    root, model_dir, shots, dropped = demo
    out = tmp_path / "runs"
    res = run_cli(
        "rank",
        "--year",
        "2019,2021",
        "--topics",
        "main,progress",
        "--model",
        str(model_dir),
        "--rootpath",
        str(root),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--top-k",
        str(N_SHOTS + 8),
        "--run-id",
        "my run",
    )
    # --top-k above the number of shots: every searchable shot is ranked, the dropped ones never
    assert res.exit_code == 0, res.output
    assert res.output.count("v3c1: 1,500 shots") == 1  # one pass for three topic sets (8 dropped shots left out)
    for edition, n_topics in (("tv19", 30), ("tv21", 20), ("progress", 20)):
        assert f"{edition}: {n_topics} topics -> {out}/my_run.{edition}.txt  [infAP 0." in res.output
        lines = read_lines(out / f"my_run.{edition}.txt")
        topics = list(dict.fromkeys(line[0] for line in lines))
        assert len(topics) == n_topics and all(t.startswith("1") for t in topics)
        assert {line[5] for line in lines} == {"my_run"} and {line[1] for line in lines} == {"0"}
        for topic in topics:
            rows = [line for line in lines if line[0] == topic]
            assert [int(r[3]) for r in rows] == list(range(1, N_SHOTS + 1))
            scores = [float(r[4]) for r in rows]
            assert all(a > b for a, b in zip(scores, scores[1:]))
            assert not set(dropped) & {r[2] for r in rows}
        side = json.loads((out / f"my_run.{edition}.txt.provenance.json").read_text())
        assert side["run"]["edition"] == edition and side["topics"]["count"] == n_topics
        assert side["collection"] == {
            **side["collection"],
            "ranked_shots": N_SHOTS,
            "excluded_dropped_shots": 8,
            "synthetic": True,
        }
        assert [f["name"] for f in side["features"]] == [n for n, _ in FEATURES]
        assert side["features"][0]["shape"] == [N_SHOTS + 8, 512]
        assert side["engine"]["precision"] == "fp32" and side["engine"]["device"] == "cpu"
        assert len(side["model"]["sha256"]) == 64 and side["software"]["avsbench"] and side["wall_time_s"] > 0
    # the scorer sees exactly our order: re-sorting by score changes nothing
    run = RunFile.read(out / "my_run.tv19.txt")
    for lines in run.topics.values():
        assert [s for s, _ in lines.ranked()] == lines.shots


def test_round_trip_trec_xml_scores_identical(demo, tmp_path):
    root, model_dir, _, _ = demo
    out = tmp_path / "runs"
    assert (
        run_cli(
            "rank",
            "--year",
            "2019",
            "--model",
            str(model_dir),
            "--rootpath",
            str(root),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--no-score",
        ).exit_code
        == 0
    )
    trec = out / "model.tv19.txt"
    res = run_cli(
        "submit",
        str(trec),
        "--year",
        "2019",
        "--pid",
        "DEMO",
        "--priority",
        "1",
        "--class",
        "F",
        "--train-type",
        "D",
        "--desc",
        "round trip",
        "--rootpath",
        str(root),
    )
    assert res.exit_code == 0, res.output
    xml = out / "F_M_C_D_DEMO.19_1"
    assert xml.is_file()
    assert run_cli("validate", str(xml), "--rootpath", str(root)).output.strip().endswith("valid")
    qrels = Qrels.read(root / "v3c1" / "TextData" / "avs.qrels.tv19")
    from_trec = evaluate(qrels, RunFile.read(trec)).to_dict()
    from_xml = evaluate(qrels, RunFile.read(xml)).to_dict()
    assert from_trec["summary"]["infAP"] > 0
    assert from_trec["summary"] == from_xml["summary"]
    assert from_trec["per_topic"] == from_xml["per_topic"]
    # and through `avsbench score`, NIST's exact text per topic: byte-identical
    outputs = [
        run_cli("score", str(p), "--rootpath", str(root), "--format", "sample-eval", "--per-topic").output
        for p in (trec, xml)
    ]
    assert outputs[0] == outputs[1] and "infAP\t\tall" in outputs[0]


def test_bf16_int8_and_cache_give_the_fp32_runs(demo, tmp_path):
    root, model_dir, _, _ = demo
    common = [
        "--year",
        "2021",
        "--model",
        str(model_dir),
        "--rootpath",
        str(root),
        "--device",
        "cpu",
        "--top-k",
        "200",
        "--no-score",
    ]
    assert run_cli("rank", *common, "--precision", "fp32", "--out", str(tmp_path / "a")).exit_code == 0
    for precision in ("bf16", "int8"):
        res = run_cli("rank", *common, "--precision", precision, "--out", str(tmp_path / precision))
        assert ("no AMX/AVX512-BF16" in res.output) == (precision == "bf16" and not cpu_has_fast_bf16())
        assert (
            res.exit_code == 0
            and f"{precision}: " in res.output
            and "re-scored in fp32" in res.output
            and "not certified" not in res.output
        )
        assert (tmp_path / "a" / "model.tv21.txt").read_bytes() == (
            tmp_path / precision / "model.tv21.txt"
        ).read_bytes()
        engine = json.loads((tmp_path / precision / "model.tv21.txt.provenance.json").read_text())["engine"]
        assert (
            engine["precision"] == precision
            and engine["rescored_shots"] >= 200
            and engine["max_screening_score_error"] > 0
        )
    for d in "ef":  # int8 embeddings cached (keyed by precision) and re-used: still the fp32 run
        res = run_cli(
            "rank", *common, "--precision", "int8", "--out", str(tmp_path / d), "--cache", str(tmp_path / "cache8")
        )
        assert res.exit_code == 0 and ("embeddings from cache" in res.output) == (d == "f")
        assert (tmp_path / d / "model.tv21.txt").read_bytes() == (tmp_path / "a" / "model.tv21.txt").read_bytes()
    cache = tmp_path / "cache"
    first = run_cli("rank", *common, "--precision", "fp32", "--out", str(tmp_path / "c"), "--cache", str(cache))
    again = run_cli("rank", *common, "--precision", "fp32", "--out", str(tmp_path / "d"), "--cache", str(cache))
    assert "from cache" not in first.output and "embeddings from cache" in again.output
    for d in "cd":
        assert (tmp_path / d / "model.tv21.txt").read_bytes() == (tmp_path / "a" / "model.tv21.txt").read_bytes()
    assert json.loads((tmp_path / "d" / "model.tv21.txt.provenance.json").read_text())["cache"]["hit"] is True


def test_missing_precomputed_text_feature_is_named(demo, tmp_path):
    root, model_dir, _, _ = demo
    text_dir = root / "v3c1" / "TextData" / "demo_clip512"
    topics = BigFile(text_dir)
    keep = [i for i in topics.ids if i != "611"]
    BigFile.write(tmp_path / "partial", keep, topics.read(keep))
    saved = tmp_path / "saved"
    text_dir.rename(saved)
    try:
        res = CliRunner().invoke(
            main, ["rank", "--year", "2019", "--model", str(model_dir), "--rootpath", str(root), "--out", str(tmp_path)]
        )
        assert res.exit_code == 2
        assert str(text_dir) in res.output and "precomputed text feature" in res.output
        (tmp_path / "partial").rename(text_dir)
        res = CliRunner().invoke(
            main, ["rank", "--year", "2019", "--model", str(model_dir), "--rootpath", str(root), "--out", str(tmp_path)]
        )
        assert res.exit_code == 2 and "'611'" in res.output and "id.txt" in res.output
    finally:
        if text_dir.exists():
            import shutil

            shutil.rmtree(text_dir)
        saved.rename(text_dir)


def test_nan_weights_and_text_features_are_blamed_on_their_true_source(demo, tmp_path):
    """NaN in the weights names the weights file and tensor; inf in a topic's precomputed text
    feature names the text feature file and the topic, not a video feature file (issue 11, item 6)."""
    import shutil

    from safetensors.torch import load_file, save_file

    root, model_dir, _, _ = demo
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    tensors = load_file(broken / "weights.safetensors")
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, broken / "weights.safetensors", metadata={"format": "pt", "config_version": "1"})
    (broken / "manifest.json").unlink()  # hand-edited weights: without the unlink the manifest check refuses them first
    args = ["rank", "--year", "2019", "--rootpath", str(root), "--out", str(tmp_path / "runs"), "--device", "cpu"]
    res = CliRunner().invoke(main, [*args, "--model", str(broken)])
    assert res.exit_code == 2 and str(broken / "weights.safetensors") in res.output and repr(name) in res.output, (
        res.output
    )
    assert "FeatureData" not in res.output and not (tmp_path / "runs").exists()

    text_dir = root / "v3c1" / "TextData" / "demo_clip512"
    topics = BigFile(text_dir)
    values = topics.read(topics.ids)
    values[topics.ids.index("615"), 7] = np.inf
    saved = tmp_path / "saved"
    text_dir.rename(saved)
    try:
        BigFile.write(text_dir, topics.ids, values)
        res = CliRunner().invoke(main, [*args, "--model", str(model_dir)])
        assert res.exit_code == 2 and str(text_dir / "feature.bin") in res.output and "for topic 615" in res.output, (
            res.output
        )
        assert "FeatureData" not in res.output and not (tmp_path / "runs").exists()
    finally:
        if text_dir.exists():
            shutil.rmtree(text_dir)
        saved.rename(text_dir)


def test_submit_and_validate_errors(tmp_path):
    run = tmp_path / "run.txt"
    run.write_text("1611 0 shot00001_1 1 0.5 x\n")
    res = CliRunner().invoke(
        main,
        [
            "submit",
            str(run),
            "--year",
            "2019",
            "--pid",
            "T",
            "--priority",
            "1",
            "--class",
            "F",
            "--train-type",
            "D",
            "--desc",
            "d",
        ],
    )
    assert res.exit_code == 2 and "--elapsed-time" in res.output
    res = CliRunner().invoke(
        main,
        [
            "submit",
            str(run),
            "--year",
            "2018",
            "--pid",
            "T",
            "--priority",
            "1",
            "--class",
            "F",
            "--train-type",
            "D",
            "--desc",
            "d",
            "--elapsed-time",
            "1",
        ],
    )
    assert res.exit_code == 2 and "not a topic of tv18" in res.output
    res = CliRunner().invoke(
        main,
        [
            "submit",
            str(run),
            "--year",
            "2019",
            "--pid",
            "T",
            "--priority",
            "1",
            "--class",
            "F",
            "--train-type",
            "D",
            "--desc",
            "d",
            "--elapsed-time",
            "1",
            "--out",
            str(tmp_path / "x.xml"),
        ],
    )
    assert res.exit_code == 0 and "no results for topic(s) 612" in res.output
    bad = tmp_path / "bad.xml"
    bad.write_text(
        (tmp_path / "x.xml")
        .read_text()
        .replace('seqNum="1"', 'seqNum="0"')
        .replace('elapsedTime="1"', 'elapsedTime="1.0"', 2)
    )
    res = CliRunner().invoke(main, ["validate", str(bad)])
    assert res.exit_code == 1
    reported = [line for line in res.output.splitlines() if line.startswith(str(bad) + ":") and ": [" in line]
    assert len(reported) == 3 and f"{bad}:6: [nist] seqNum '0'" in res.output


def test_submit_and_validate_do_not_import_torch():
    code = "import sys, avsbench.cli.submit; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_rank_laff_ml_with_frame_feature(demo, tmp_path):
    root, _, shots, _ = demo
    torch.manual_seed(1)
    config = ModelConfig(
        video_features=[
            FeatureSpec("demo_clip512", 512, "frame", transform="tile", dropout=0.0, batch_norm=True),
            FeatureSpec("demo_partial768", 768, "video", batch_norm=True),
        ],
        text_features=[FeatureSpec("demo_clip512", 512, "precomputed", transform="tile", dropout=0.0)],
        common_dim=1024,
        heads=2,
        max_frames=4,
    )
    model_dir = save_model(tmp_path / "laffml", LaffModel(config).eval())
    res = run_cli(
        "rank",
        "--year",
        "2020",
        "--model",
        str(model_dir),
        "--rootpath",
        str(root),
        "--out",
        str(tmp_path / "runs"),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--top-k",
        "50",
    )
    assert res.exit_code == 0, res.output
    assert "tv20: 20 topics" in res.output and "infAP 0." in res.output
    side = json.loads((tmp_path / "runs" / "laffml.tv20.txt.provenance.json").read_text())
    assert side["features"][0]["kind"] == "frame" and side["features"][0]["path"].endswith(
        "FeatureData/frame/demo_clip512"
    )


def test_submit_refuses_a_sidecar_of_another_run(demo, tmp_path):
    """Issue 11 item 4: a new run beside the old sidecar (rank cut between its two writes) is not
    submitted with the old run's elapsed time; --elapsed-time still works."""
    root, model_dir, _, _ = demo
    rank = [
        "rank",
        "--year",
        "2019",
        "--model",
        str(model_dir),
        "--rootpath",
        str(root),
        "--device",
        "cpu",
        "--no-score",
    ]
    assert run_cli(*rank, "--out", str(tmp_path / "a")).exit_code == 0
    assert run_cli(*rank, "--out", str(tmp_path / "b"), "--top-k", "50").exit_code == 0
    run = tmp_path / "a" / "model.tv19.txt"
    run.write_bytes((tmp_path / "b" / "model.tv19.txt").read_bytes())  # the new run; the sidecar is the old one's
    submit = [
        "submit",
        str(run),
        "--year",
        "2019",
        "--pid",
        "T",
        "--priority",
        "1",
        "--class",
        "F",
        "--train-type",
        "D",
        "--desc",
        "d",
    ]
    res = run_cli(*submit)
    assert res.exit_code == 2 and "provenance sidecar does not describe model.tv19.txt" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "a" / "F_M_C_D_T.19_1").exists()
    res = run_cli(*submit, "--elapsed-time", "5")
    assert res.exit_code == 0 and "elapsedTime 5" in res.output, res.output
    (tmp_path / "b" / "model.tv19.txt.provenance.json").write_text("{")
    res = run_cli(*submit[:1], str(tmp_path / "b" / "model.tv19.txt"), *submit[2:])
    assert res.exit_code == 2 and "not readable JSON" in res.output


def test_corrupted_cache_entry_is_rebuilt_with_a_warning(demo, tmp_path):
    """Issue 11 item 7: a corrupted embedding cache entry is not used silently."""
    root, model_dir, _, _ = demo
    common = [
        "rank",
        "--year",
        "2021",
        "--model",
        str(model_dir),
        "--rootpath",
        str(root),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--no-score",
        "--cache",
        str(tmp_path / "cache"),
    ]
    assert run_cli(*common, "--out", str(tmp_path / "a")).exit_code == 0
    (entry,) = [p for p in (tmp_path / "cache").iterdir()]
    feature = entry / "embeddings" / "feature.bin"
    data = bytearray(feature.read_bytes())
    data[len(data) // 2] ^= 0x40
    feature.write_bytes(bytes(data))
    res = run_cli(*common, "--out", str(tmp_path / "b"))
    assert (
        res.exit_code == 0
        and "avsbench: warning: embedding cache entry" in res.output
        and "from cache" not in res.output
    )
    assert (tmp_path / "b" / "model.tv21.txt").read_bytes() == (tmp_path / "a" / "model.tv21.txt").read_bytes()
    assert "embeddings from cache" in run_cli(*common, "--out", str(tmp_path / "c")).output
