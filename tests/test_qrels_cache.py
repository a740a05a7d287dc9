"""The parsed-qrels cache (issue 12): used only while size, mtime and content all match."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from avsbench.data import qrels_cache
from avsbench.data.qrels import Qrels

TOY = b"7 0 a 1 1\n7 0 b 1 0\n7 0 c 2 1\n7 0 d 2 0\n7 0 e 2 -1\n7 0 f 2 -1\n"


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(qrels_cache.CACHE_ENV, str(folder))
    return folder / "qrels"


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.qrels")) if folder.is_dir() else []


def test_cached_qrels_equal_parsed_qrels(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "toy.qrels"
    path.write_bytes(TOY)
    first = Qrels.read(path)
    assert len(_entries(cache_dir)) == 1
    second = Qrels.read(path)  # from the cache
    for qrels in (first, second):
        topic = qrels["7"]
        assert topic.strata == ("1", "2") and topic.estimated_relevant == 3.0
        assert topic.judgment == {"a": 1, "b": 0, "c": 1, "d": 0, "e": -1, "f": -1}
        assert list(topic.judgment) == list("abcdef")  # file order
        assert topic.stratum["e"] == "2" and qrels.path == str(path)
    assert second["7"].ideal_dcg() == first["7"].ideal_dcg()


def test_cache_is_rebuilt_when_the_bytes_change_with_same_size_and_mtime(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "toy.qrels"
    path.write_bytes(TOY)
    stat = path.stat()
    assert Qrels.read(path)["7"].judgment["a"] == 1
    changed = TOY.replace(b"7 0 a 1 1", b"7 0 a 1 0")  # same size
    path.write_bytes(changed)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    reread = Qrels.read(path)
    assert reread["7"].judgment["a"] == 0 and reread["7"].relevant == {"2": 1}
    assert len(_entries(cache_dir)) == 2


def test_cache_is_rebuilt_when_only_the_mtime_changes(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "toy.qrels"
    path.write_bytes(TOY)
    Qrels.read(path)
    os.utime(path, ns=(1, 10**18))
    Qrels.read(path)
    assert len(_entries(cache_dir)) == 2


def test_damaged_or_foreign_entries_are_ignored(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "toy.qrels"
    path.write_bytes(TOY)
    Qrels.read(path)
    (entry,) = _entries(cache_dir)
    entry.write_bytes(entry.read_bytes()[:-5])  # truncated
    assert Qrels.read(path)["7"].judgment["a"] == 1
    other = tmp_path / "other.qrels"
    other.write_bytes(TOY.replace(b"7 0", b"8 0"))
    key = qrels_cache.file_key(path, False)
    entry = Path(qrels_cache.entry_path(key))
    entry.write_bytes(entry.read_bytes())
    foreign = qrels_cache.file_key(other, False)
    Qrels.read(other)
    entry.write_bytes(Path(qrels_cache.entry_path(foreign)).read_bytes())  # an entry for other bytes
    assert list(Qrels.read(path).topics) == ["7"]


def test_strict_and_lenient_readings_are_cached_apart(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "lead.qrels"
    path.write_bytes(b" " + TOY)
    with pytest.raises(Exception, match="starts with whitespace"):
        Qrels.read(path)
    lenient = Qrels.read(path, lenient=True)
    assert "7" not in lenient.topics  # every record shifted, as in sample_eval.pl
    with pytest.raises(Exception, match="starts with whitespace"):
        Qrels.read(path)


def test_unwritable_cache_folder_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv(qrels_cache.CACHE_ENV, str(blocker))
    path = tmp_path / "toy.qrels"
    path.write_bytes(TOY)
    assert Qrels.read(path)["7"].estimated_relevant == 3.0


def test_old_entries_are_swept(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qrels_cache, "MAX_ENTRIES", 2)
    for i in range(4):
        path = tmp_path / f"q{i}.qrels"
        path.write_bytes(TOY.replace(b"7 0", f"{i} 0".encode()))
        Qrels.read(path)
    assert len(_entries(cache_dir)) == 2


GOLDEN = Path(__file__).parent / "golden" / "sample_eval"


@pytest.fixture()
def always_warm(monkeypatch: pytest.MonkeyPatch) -> None:
    from avsbench.eval import scoring

    monkeypatch.setattr(scoring, "PARALLEL_QRELS_BYTES", 0)  # every run counts as large


def test_cold_qrels_parsed_by_another_process_while_the_run_is_read(
    tmp_path: Path, cache_dir: Path, always_warm: None
) -> None:
    from avsbench.eval.sample_eval import format_sample_eval
    from avsbench.eval.scoring import score_runs

    qrels = tmp_path / "v3c1_19.qrels"
    qrels.write_bytes((GOLDEN / "qrels" / "v3c1_19.qrels").read_bytes())
    run = GOLDEN / "runs" / "v3c1_19_realistic.run"
    (scored,) = score_runs([run], qrels=qrels)
    assert len(_entries(cache_dir)) == 1  # written by the other process
    assert (
        format_sample_eval(scored.result, True).encode()
        == (GOLDEN / "expected" / "v3c1_19_realistic.q.txt").read_bytes()
    )
    (again,) = score_runs([run], qrels=qrels)  # warm: nothing to start
    assert again.result == scored.result


def test_with_qrels_parsed_aside_a_qrels_error_still_comes_before_a_run_error(
    tmp_path: Path, cache_dir: Path, always_warm: None
) -> None:
    from avsbench.errors import InputFormatError
    from avsbench.eval.scoring import score_runs

    qrels = tmp_path / "bad.qrels"
    qrels.write_bytes(TOY + b"7 0 g 1 yes\n")
    bad_run = tmp_path / "bad.run"
    bad_run.write_bytes(b"7 Q0 a 1 nope r\n")
    good_run = tmp_path / "good.run"
    good_run.write_bytes(b"7 Q0 a 1 2 r\n")
    for run in (bad_run, good_run):
        with pytest.raises(InputFormatError) as info:
            score_runs([run], qrels=qrels)
        assert info.value.path == str(qrels) and info.value.line == 7
    assert _entries(cache_dir) == []


def test_qrels_parsed_aside_with_an_unwritable_cache_are_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, always_warm: None
) -> None:
    from avsbench.eval.scoring import score_runs

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv(qrels_cache.CACHE_ENV, str(blocker))
    path = tmp_path / "toy.qrels"
    path.write_bytes(TOY)
    run = tmp_path / "r.run"
    run.write_bytes(b"7 Q0 a 1 3 r\n7 Q0 c 2 2 r\n")
    (scored,) = score_runs([run], qrels=path)
    assert scored.result.inum_rel == 3.0
