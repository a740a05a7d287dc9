"""Install light (issue 13 item 3): core dependencies only for scoring; torch behind [model]."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from avsbench.data.resources import bundled_runs
from avsbench.errors import MissingExtraError
from avsbench.extras import extra_of_module, require_extra

REPO = Path(__file__).resolve().parent.parent

# Runs the CLI as if torch and safetensors were not installed (an import of them fails).
NO_TORCH_CLI = """
import sys
for name in ("torch", "safetensors"):
    sys.modules[name] = None
from avsbench.cli import main
main(sys.argv[1:], prog_name="avsbench")
"""


def run_without_torch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env_path = str(REPO)
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH_CLI, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def declared_dependencies() -> tuple[list[str], list[str]]:
    """(core, model extra) requirements: the installed metadata, else pyproject.toml."""
    pyproject = REPO / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text())["project"]
        return project["dependencies"], project["optional-dependencies"]["model"]
    requires = importlib.metadata.requires("avsbench") or []
    core = [r for r in requires if "extra ==" not in r]
    model = [r.split(";")[0] for r in requires if 'extra == "model"' in r]
    return core, model


def test_core_dependencies_have_no_torch() -> None:
    core_list, model = declared_dependencies()
    core = " ".join(core_list)
    for name in ("torch", "safetensors", "ftfy"):
        assert name not in core
    for name in ("numpy", "scipy", "pandas", "click", "lxml", "rich"):
        assert name in core
    assert any(dep.startswith("torch") for dep in model)


def test_extra_of_module() -> None:
    assert extra_of_module("torch.nn.functional") == "model"
    assert extra_of_module("safetensors") == "model"
    assert extra_of_module("matplotlib.pyplot") == "plot"
    assert extra_of_module("numpy") is None
    assert extra_of_module(None) is None


def test_require_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError) as caught:
        require_extra("model")
    assert "pip install 'avsbench[model]'" in str(caught.value)


@pytest.mark.parametrize(
    "args",
    [
        ("rank", "--year", "2021", "--model", "no-model"),
        ("explain", "--model", "no-model", "--year", "2021", "--topic", "701"),
        ("model", "import-laff", "no-such.pth.tar", "--out", "imported"),
        ("demo", "--quick", "--rootpath", "demo-root", "--out", "demo-out"),
    ],
)
def test_model_commands_without_torch_say_one_line(args: tuple[str, ...], tmp_path: Path) -> None:
    done = run_without_torch(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == ["avsbench: error: this needs torch (not installed): pip install 'avsbench[model]'"]
    assert list(tmp_path.iterdir()) == []


def test_score_without_torch_works(tmp_path: Path) -> None:
    runs = bundled_runs()
    done = run_without_torch("score", "--format", "csv", *map(str, runs), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2021" in done.stdout


def test_ci_runs_the_readme_test_command_first() -> None:
    readme, ci = REPO / "README.md", REPO / ".ci" / "run"
    if not (readme.is_file() and ci.is_file()):
        pytest.skip("not in a source tree")
    block = readme.read_text().split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert len(block) == 2 and "'.[model,plot]'" in block[0] and "'.[model,test]'" in block[1]
    setup = ("#", "set ", "cd ", "rm ", "repo=")
    commands = [line for line in ci.read_text().splitlines() if line and not line.startswith(setup)]
    assert commands[0] == block[1]
    assert "AVSBENCH_TEST_NO_TORCH=1" in ci.read_text() and "--no-isolation" in ci.read_text()


def test_torch_floor_refuses_releases_affected_by_the_weights_only_bypass() -> None:
    """Issue 11 item 13: torch older than 2.6 (CVE-2025-32434) is one clear error; the extra asks for >= 2.6."""
    from avsbench.errors import MissingExtraError
    from avsbench.extras import check_torch_floor, release_tuple

    assert release_tuple("2.13.0+cpu") == (2, 13, 0) and release_tuple("2.6.0a0") == (2, 6, 0)
    for old in ("2.5.1", "2.5.1+cu121", "1.13.1"):
        with pytest.raises(MissingExtraError, match="CVE-2025-32434"):
            check_torch_floor(old)
    for new in ("2.6.0", "2.13.0+cpu", "3.0"):
        check_torch_floor(new)
    pyproject = REPO / "pyproject.toml"
    if pyproject.is_file():  # the source tree (the installed wheel's tests have no pyproject)
        assert '"torch>=2.6"' in pyproject.read_text()
