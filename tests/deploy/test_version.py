"""`llmrelay --version`: the installed distribution's version, one source (llmrelay.__version__)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

import llmrelay
from llmrelay.cli import main, package_version


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"llmrelay {llmrelay.__version__}\n"


def test_version_comes_from_the_installed_metadata() -> None:
    assert package_version() == version("llmrelay") == llmrelay.__version__


def test_version_from_the_command_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "llmrelay", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == f"llmrelay {llmrelay.__version__}"
