"""The documentation site builds without a warning, the commands it shows are real, and the code passes ruff.

`mkdocs build --strict` fails on a broken link, a missing page or an API name that no longer
exists; every ``autospk-study ...`` command line shown in the docs or the README is parsed by
the real parser (a flag renamed or removed fails here, without running anything).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studies.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md"))


def _build_site(site: Path, notebook_page: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT),
           "AUTOSPK_NOTEBOOK_PAGE": str(notebook_page)}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr


def test_the_site_builds_strictly_and_its_cli_reference_is_the_parsers(tmp_path):
    _build_site(tmp_path, tmp_path / "no-notebook.md")
    # Until the notebook is rendered, its page says how.
    assert "python docs/render_notebook.py" in (tmp_path / "tutorials" / "notebook" / "index.html").read_text()
    cli = (tmp_path / "reference" / "cli" / "index.html").read_text()
    for command in ("train-supernet", "create", "optimize", "list", "show", "plot", "export", "finetune", "delete",
                    "quickstart"):
        assert f"usage: autospk-study {command}" in cli
    assert "--energy-model" in cli and "--record-energy-models" in cli
    api = (tmp_path / "reference" / "api" / "index.html").read_text()
    assert "EnergyMonitor" in api and "SubnetEvaluator" in api and "under_energy_model" in api


def test_the_readme_is_short_and_points_to_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "pip install -c constraints.txt -e . && autospk-study quickstart" in readme
    assert 'pip install -q -c constraints.txt -e ".[test]" && python -m pytest -q' in readme
    assert "mkdocs serve" in readme and "(docs/)" in readme


def _commands(text: str) -> list[str]:
    """``autospk-study ...`` command lines of a page, continuation lines joined."""
    text = text.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip().removeprefix("$ ")
        if line.startswith("autospk-study ") and "|" not in line and "..." not in line:
            found.append(line)
    return found


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_shown_parses_with_the_real_parser(page):
    parser = build_parser()
    for command in _commands(page.read_text()):
        argv = shlex.split(command, comments=True)[1:]
        try:
            parser.parse_args(argv)
        except SystemExit as exit_info:
            pytest.fail(f"{page.name}: `{command}` does not parse (exit {exit_info.code})")


@pytest.mark.slow
def test_the_digits_tutorial_runs_as_written_and_the_site_shows_its_notebook(tmp_path, digits_checkpoint,
                                                                             monkeypatch):
    """Every ``autospk-study`` command of the digits tutorial, in order, after the quickstart; the
    quickstart itself is replaced by the tests' supernet at the path it writes (it has a test of
    its own in test_cli.py). Then the notebook, rendered on the tutorial's study, is a page of the
    site, figures included."""
    from studies.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOSPK_STORAGE", raising=False)
    (tmp_path / "autospk-runs").mkdir()
    shutil.copy(digits_checkpoint.path, tmp_path / "autospk-runs" / "digits-supernet.pt")
    commands = _commands((ROOT / "docs" / "tutorials" / "digits.md").read_text())
    assert len(commands) >= 9
    for command in commands:
        assert main([*shlex.split(command, comments=True)[1:], "--quiet"]) == 0, command
    for output in ("digits-p3.html", "knee-subnet/subnet.pt", "knee-finetuned/subnet.json"):
        assert (tmp_path / output).is_file(), output

    spec = importlib.util.spec_from_file_location("render_notebook", ROOT / "docs" / "render_notebook.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it; see conftest._one_thread
    page = tmp_path / "notebook.md"
    assert render.main(["--storage", "sqlite:///autospk.db", "--study", "digits-p3", "--output", str(page)]) == 0
    site = tmp_path / "site"
    _build_site(site, page)
    shown = (site / "tutorials" / "notebook" / "index.html").read_text()
    assert "study <code>digits-p3</code>" in shown
    assert shown.count('class="plotly-graph-div"') == 6  # 3-D front, projections, hypervolume, layers, models, genes
    assert shown.count("* plotly.js v") == 1 and "Pareto front in 3-D" in shown


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES:
        relative = page.relative_to(ROOT / "docs").as_posix()
        assert re.search(rf":\s*{re.escape(relative)}\s*$", nav, re.M), f"{relative} is not in mkdocs.yml's nav"


def test_the_code_passes_ruff():
    """ruff, configured in pyproject.toml (pyflakes, pycodestyle, import order, bugbear, pyupgrade)."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


def test_optunas_private_names_are_used_in_one_module_only():
    private = re.compile(r"\._(trial_id|storage|study_id)\b")
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for package in ("models", "energy", "nas", "studies")
                 for path in sorted((ROOT / package).rglob("*.py")) if path.name != "_optuna_private.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1) if private.search(line)]
    assert not offenders, f"Optuna's private names outside nas/_optuna_private.py: {offenders}"
