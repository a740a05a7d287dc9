"""Kill tests (issue 11 item 4): SIGKILL at every rename, swap and removal of an old copy that
``rank``, ``model import-laff``, ``train`` and ``features convert`` perform (the atomic layer's
``AVSBENCH_KILL_AT=n`` hook), then read the output as the next command would: it is the old
complete output or a new complete one, never a mix. Folder swaps run with ``renameat2``
``RENAME_EXCHANGE`` and with the two-rename fallback (recovered on the next read)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from avsbench.data.atomic import KILL_AT_ENV, NO_EXCHANGE_ENV
from avsbench.data.bigfile import BigFile
from avsbench.errors import InputFormatError
from avsbench.model.checkpoint import load_model, save_model
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel
from avsbench.ranking.output import read_provenance

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "laff_reference"
MODES = {"exchange": {}, "two_renames": {NO_EXCHANGE_ENV: "1"}}


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    child = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "avsbench", *args], env=child, capture_output=True, text=True, timeout=600, check=False
    )


def kill_at_every_step(
    args: list[str], prepare: Callable[[], None], check: Callable[[], None], env: dict[str, str]
) -> int:
    """Run ``args`` killed at step 1, 2, ... (``prepare`` resets the old output first; ``check`` reads
    the result) until a run finishes; returns the number of steps the command has."""
    for step in range(1, 30):
        prepare()
        done = run_cli(args, {**env, KILL_AT_ENV: str(step)})
        check()
        if done.returncode == 0:
            return step - 1
        assert done.returncode == -signal.SIGKILL, (step, done.returncode, done.stderr[-3000:])
    raise AssertionError("the command never finished")


def snapshot_model(folder: Path) -> dict:
    loaded = load_model(folder)
    return {"config": loaded.config.to_dict(), "weights": {k: v.clone() for k, v in loaded.model.state_dict().items()}}


def same_model(a: dict, b: dict) -> bool:
    return (
        a["config"] == b["config"]
        and a["weights"].keys() == b["weights"].keys()
        and all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    )


@pytest.mark.parametrize("mode", sorted(MODES))
def test_features_convert_overwrite(tmp_path: Path, mode: str) -> None:
    out, pristine = tmp_path / "feat", tmp_path / "pristine"
    BigFile.write(pristine, ["a", "b"], np.ones((2, 3), dtype=np.float32))
    np.save(tmp_path / "new.npy", np.arange(8, dtype=np.float32).reshape(4, 2))
    (tmp_path / "ids.txt").write_text("w\nx\ny\nz\n")
    old = (["a", "b"], np.ones((2, 3), dtype=np.float32))
    new = (["w", "x", "y", "z"], np.arange(8, dtype=np.float32).reshape(4, 2))
    seen = set()

    def prepare() -> None:
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(pristine, out)

    def check() -> None:
        bigfile = BigFile(out)
        found = (bigfile.ids, bigfile.read_rows(list(range(bigfile.nrows))))
        which = "old" if found[0] == old[0] else "new"
        expected = old if which == "old" else new
        assert found[0] == expected[0] and np.array_equal(found[1], expected[1])
        seen.add(which)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["feat", "ids.txt", "new.npy", "pristine"]

    args = [
        "features",
        "convert",
        str(tmp_path / "new.npy"),
        str(out),
        "--ids",
        str(tmp_path / "ids.txt"),
        "--overwrite",
    ]
    steps = kill_at_every_step(args, prepare, check, MODES[mode])
    assert steps == (2 if mode == "exchange" else 3) and seen == {"old", "new"}


def small_model_folder(folder: Path, seed: int, features: list[tuple[str, int]], text: list[FeatureSpec]) -> Path:
    torch.manual_seed(seed)
    config = ModelConfig([FeatureSpec(n, d, "video") for n, d in features], text, common_dim=64, heads=2)
    return save_model(folder, LaffModel(config).eval())


@pytest.mark.parametrize("mode", sorted(MODES))
def test_model_import_laff(tmp_path: Path, mode: str) -> None:
    out, pristine = tmp_path / "model", tmp_path / "pristine"
    small_model_folder(pristine, 0, [("vid", 12)], [FeatureSpec("clip", 32, "precomputed")])
    old = snapshot_model(pristine)
    args = [
        "model",
        "import-laff",
        str(FIXTURE / "reference_checkpoint.pth.tar"),
        "--out",
        str(out),
        "--w2v",
        str(FIXTURE / "w2v_bigfile"),
    ]
    assert run_cli(args, {}).returncode == 0
    new = snapshot_model(out)
    seen = set()

    def prepare() -> None:
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(pristine, out)

    def check() -> None:
        found = snapshot_model(out)
        seen.add("old" if same_model(found, old) else "new")
        assert same_model(found, old) or same_model(found, new)

    assert kill_at_every_step(args, prepare, check, MODES[mode]) == (2 if mode == "exchange" else 3)
    assert seen == {"old", "new"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from avsbench.data.synthetic import generate_demo

    root = tmp_path_factory.mktemp("demo")
    generate_demo(root, n_shots=300, n_train_videos=200, n_val_videos=40)
    return root


def test_train(demo: Path, tmp_path: Path) -> None:
    out, pristine = tmp_path / "model", tmp_path / "pristine"
    small_model_folder(pristine, 0, [("demo_clip512", 512)], [FeatureSpec("demo_clip512", 512, "precomputed")])
    old = snapshot_model(pristine)
    settings = tmp_path / "tiny.json"
    settings.write_text(json.dumps({"common_dim": 32, "heads": 2, "batch_size": 64, "early_stop_patience": 5}))
    args = [
        "train",
        "--train-collection",
        "demotrain",
        "--val-collection",
        "demoval",
        "--video-features",
        "demo_clip512",
        "--text-features",
        "bow,clip:demo_clip512",
        "--demo-settings",
        "--config",
        str(settings),
        "--epochs",
        "2",
        "--rootpath",
        str(demo),
        "--out",
        str(out),
    ]
    assert run_cli(args, {}).returncode == 0
    final = snapshot_model(out)
    seen = set()

    def prepare() -> None:
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(pristine, out)

    def check() -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = snapshot_model(out)  # the manifest ties weights, config, vocabulary and training state
        if same_model(found, old):
            seen.add("old")
            return
        trained = len(found["config"]["metrics"]["history"])
        state = torch.load(out / "train_state.pt", weights_only=True)
        assert json.loads(state["progress"])["epoch"] == trained  # the resumable state belongs to these weights
        assert found["config"]["complete"] == (trained == 2)
        if trained == 2:
            assert same_model(found, final)
        seen.add(f"epoch {trained}")

    assert kill_at_every_step(args, prepare, check, {}) == 4
    assert seen == {"old", "epoch 1", "epoch 2"}


def test_rank(demo: Path, tmp_path: Path) -> None:
    features = [("demo_clip512", 512), ("demo_partial768", 768)]
    text = [FeatureSpec("demo_clip512", 512, "precomputed")]
    model_a = small_model_folder(tmp_path / "a", 0, features, text)
    model_b = small_model_folder(tmp_path / "b", 1, features, text)
    common = ["rank", "--year", "2019", "--rootpath", str(demo), "--device", "cpu", "--no-score", "--run-id", "r"]
    pristine, out = tmp_path / "pristine", tmp_path / "runs"
    assert run_cli([*common, "--model", str(model_a), "--out", str(pristine)], {}).returncode == 0
    fresh = tmp_path / "fresh"
    assert run_cli([*common, "--model", str(model_b), "--out", str(fresh)], {}).returncode == 0
    run_name = "r.tv19.txt"
    old_run, new_run = (pristine / run_name).read_bytes(), (fresh / run_name).read_bytes()
    assert old_run != new_run
    seen = set()

    def prepare() -> None:
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(pristine, out)

    def check() -> None:
        run = (out / run_name).read_bytes()
        assert run in (old_run, new_run)
        try:
            side = read_provenance(out / run_name)
        except InputFormatError as exc:
            assert "does not describe" in exc.message and run == new_run  # new run, old sidecar: refused, not used
            seen.add("new run, old sidecar refused")
            return
        assert side is not None and side["model"]["dir"] == str((model_a if run == old_run else model_b).resolve())
        seen.add("old" if run == old_run else "new")

    assert kill_at_every_step([*common, "--model", str(model_b), "--out", str(out)], prepare, check, {}) == 2
    assert seen == {"old", "new run, old sidecar refused", "new"}


def test_rank_with_embedding_cache(demo: Path, tmp_path: Path) -> None:
    """The cache entry is a unit too: after a kill, every entry present verifies, and the next
    opening of the cache sweeps what the killed run left."""
    from avsbench.data.atomic import check_manifest
    from avsbench.ranking.cache import sweep_cache

    features = [("demo_clip512", 512)]
    model = small_model_folder(tmp_path / "m", 0, features, [FeatureSpec("demo_clip512", 512, "precomputed")])
    cache, out = tmp_path / "cache", tmp_path / "runs"
    args = [
        "rank",
        "--year",
        "2019",
        "--rootpath",
        str(demo),
        "--device",
        "cpu",
        "--no-score",
        "--model",
        str(model),
        "--out",
        str(out),
        "--cache",
        str(cache),
    ]
    seen = set()

    def prepare() -> None:
        for folder in (cache, out):
            shutil.rmtree(folder, ignore_errors=True)

    def check() -> None:
        sweep_cache(cache)
        entries = sorted(cache.iterdir()) if cache.exists() else []
        assert all(not p.name.startswith(".") for p in entries), entries  # leftovers swept
        for entry in entries:
            assert check_manifest(entry) is not None
        seen.add(f"{len(entries)} entries, run {'present' if (out / 'm.tv19.txt').exists() else 'absent'}")

    assert kill_at_every_step(args, prepare, check, {}) == 4
    assert seen == {"0 entries, run absent", "1 entries, run absent", "1 entries, run present"}
