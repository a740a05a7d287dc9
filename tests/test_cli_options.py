"""The options every command shares (``avsbench.cli.options``): one ``--rootpath`` honouring
``$AVSBENCH_ROOT``, ``-q`` for ``--per-topic``."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from avsbench.cli import COMMANDS, main
from avsbench.data.resources import bundled_runs

RUNS = [str(p) for p in bundled_runs()]


def _all_commands() -> list[tuple[str, click.Command]]:
    out = []
    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        if isinstance(command, click.Group):
            out += [(f"{name} {sub}", command.commands[sub]) for sub in command.commands]
        else:
            out.append((name, command))
    return out


def _rootpath(command: click.Command) -> click.Option | None:
    return next((p for p in command.params if p.name == "rootpath"), None)


def test_every_rootpath_is_the_same_folder_option():
    with_root = [(name, _rootpath(cmd)) for name, cmd in _all_commands() if _rootpath(cmd) is not None]
    assert len(with_root) == 12, [n for n, _ in with_root]  # 10, plus data fetch and data add-qrels
    for name, option in with_root:
        assert option.opts == ["--rootpath"], name
        assert isinstance(option.type, click.Path) and not option.type.file_okay, name
        generates_demo = name in ("demo", "collection demo")
        assert option.envvar == (None if generates_demo else "AVSBENCH_ROOT"), name


def test_collection_info_takes_the_root_from_the_environment(tmp_path: Path):
    (tmp_path / "mycoll").mkdir()
    result = CliRunner(env={"AVSBENCH_ROOT": str(tmp_path)}).invoke(main, ["collection", "info", "mycoll"])
    assert f"root: {tmp_path}" in result.output or str(tmp_path / "mycoll") in result.output, result.output


def test_collection_info_demo_ignores_the_environment_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AVSBENCH_CACHE", str(tmp_path / "cache"))
    result = CliRunner(env={"AVSBENCH_ROOT": str(tmp_path / "data")}).invoke(
        main, ["collection", "info", "demov3c1", "--demo"]
    )
    assert str(tmp_path / "cache" / "demo") in result.output
    assert str(tmp_path / "data") not in result.output


def test_score_q_is_per_topic():
    short = CliRunner().invoke(main, ["score", "-q", "--format", "csv", *RUNS])
    long = CliRunner().invoke(main, ["score", "--per-topic", "--format", "csv", *RUNS])
    assert short.exit_code == 0, short.output
    assert short.stdout == long.stdout
    assert len(short.stdout.splitlines()) > 1 + len(RUNS)


def test_compare_q_and_no_per_topic():
    shown = CliRunner().invoke(main, ["compare", "-q", "--format", "markdown", *RUNS])
    hidden = CliRunner().invoke(main, ["compare", "--no-per-topic", "--format", "markdown", *RUNS])
    assert shown.exit_code == 0 and hidden.exit_code == 0, shown.output + hidden.output
    assert "infAP per topic" in shown.stdout and "infAP per topic" not in hidden.stdout
