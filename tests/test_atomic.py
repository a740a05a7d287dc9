"""The atomic layer: folder swaps, recovery of a cut swap, manifests, the kill hook, and the CLI's
messages for a full disk and for running out of memory (issue 11 items 4 and 12)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data import atomic
from avsbench.data.bigfile import BigFile
from avsbench.errors import InputFormatError

REPO = Path(__file__).resolve().parent.parent


def make_folder(path: Path, text: str) -> None:
    with atomic.folder_unit(path) as staging:
        (staging / "a.txt").write_text(text)
        (staging / "b.txt").write_text(text * 2)
        atomic.write_manifest(staging, ["a.txt", "b.txt"])


@pytest.mark.parametrize("exchange", [True, False])
def test_folder_unit_replaces_a_folder_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setenv(atomic.NO_EXCHANGE_ENV, "1")
    make_folder(tmp_path / "f", "old")
    make_folder(tmp_path / "f", "new")
    assert (tmp_path / "f" / "b.txt").read_text() == "newnew"
    assert atomic.check_manifest(tmp_path / "f") is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    with pytest.raises(RuntimeError), atomic.folder_unit(tmp_path / "f") as staging:
        (staging / "a.txt").write_text("half")
        raise RuntimeError("cut")
    assert (tmp_path / "f" / "a.txt").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_manifest_names_the_file_that_differs(tmp_path: Path) -> None:
    make_folder(tmp_path / "f", "old")
    (tmp_path / "f" / "b.txt").write_text("XXXXXX")  # same size, other bytes
    with pytest.raises(InputFormatError, match=r"b.txt: file does not match the manifest"):
        atomic.check_manifest(tmp_path / "f")
    assert atomic.check_manifest(tmp_path / "f", checksums=False) is not None
    (tmp_path / "f" / "a.txt").unlink()
    with pytest.raises(InputFormatError, match=r"a.txt: file listed in the manifest is missing"):
        atomic.check_manifest(tmp_path / "f")


def test_recovery_puts_the_old_folder_back_and_sweeps_dead_writers_only(tmp_path: Path) -> None:
    make_folder(tmp_path / "f", "old")
    (tmp_path / "f").rename(tmp_path / ".f.old")
    dead = tmp_path / f".f.new-999999999@{atomic._host()}.abc"
    other_host = tmp_path / ".f.new-999999999@elsewhere.abc"
    alive = atomic.new_staging_folder(tmp_path / "f")  # this process: alive
    for folder in (dead, other_host):
        folder.mkdir()
    atomic.recover_folder(tmp_path / "f")
    assert (tmp_path / "f" / "a.txt").read_text() == "old"
    assert not dead.exists() and other_host.exists() and alive.exists()


def test_kill_hook_stops_the_process_at_the_chosen_step(tmp_path: Path) -> None:
    code = (
        "from avsbench.data.atomic import atomic_write_text\n"
        f"for i in range(3): atomic_write_text({str(tmp_path)!r} + f'/f{{i}}', 'x')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), atomic.KILL_AT_ENV: "2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert done.returncode == -9
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["f0"]


def test_full_disk_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "feat.txt"
    source.write_text("a 1 2\nb 3 4\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    result = CliRunner().invoke(main, ["features", "convert", str(source), str(tmp_path / "out")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(
        f"avsbench: error: {tmp_path / 'out' / 'feature.bin'}: No space left on device (free space"
    )
    assert not (tmp_path / "out").exists()


def test_out_of_memory_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from avsbench.model import checkpoint

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(checkpoint, "model_info", exhausted)
    result = CliRunner().invoke(main, ["model", "info", str(tmp_path)])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [f"avsbench: error: {main_oom()}"], (
        result.output
    )


def main_oom() -> str:
    from avsbench.cli import OUT_OF_MEMORY

    return OUT_OF_MEMORY


@pytest.mark.parametrize("exchange", [True, False])
def test_features_convert_overwrite_replaces_as_a_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setenv(atomic.NO_EXCHANGE_ENV, "1")
    out = tmp_path / "feat"
    BigFile.write(out, ["a", "b"], np.ones((2, 3), dtype=np.float32))
    np.save(tmp_path / "new.npy", np.zeros((4, 2), dtype=np.float32))
    (tmp_path / "ids.txt").write_text("w\nx\ny\nz\n")
    result = CliRunner().invoke(
        main,
        ["features", "convert", str(tmp_path / "new.npy"), str(out), "--ids", str(tmp_path / "ids.txt"), "--overwrite"],
    )
    assert result.exit_code == 0, result.output
    assert BigFile(out).ids == ["w", "x", "y", "z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feat", "ids.txt", "new.npy"]


def test_convert_without_overwrite_sees_a_folder_a_crash_left_aside(tmp_path: Path) -> None:
    BigFile.write(tmp_path / "feat", ["a"], np.ones((1, 2), dtype=np.float32))
    (tmp_path / "feat").rename(tmp_path / ".feat.old")  # killed between the fallback's two renames
    (tmp_path / "src.txt").write_text("b 1 2\n")
    result = CliRunner().invoke(main, ["features", "convert", str(tmp_path / "src.txt"), str(tmp_path / "feat")])
    assert result.exit_code == 2 and "exists" in result.output
    assert BigFile(tmp_path / "feat").ids == ["a"]


def test_a_linked_folder_keeps_its_link_and_its_target_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "disk").mkdir()
    make_folder(tmp_path / "disk" / "f", "old")
    (tmp_path / "link").symlink_to(tmp_path / "disk" / "f")
    make_folder(tmp_path / "link", "new")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "disk" / "f" / "a.txt").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["f"]
