"""The site's "The notebook" page: the executed notebook that docs/render_notebook.py wrote
(``$AUTOSPK_NOTEBOOK_PAGE``, else autospk-runs/notebook.md where mkdocs runs), or, until it
exists, how to make it. The page is generated, so it is never in git."""

from __future__ import annotations

import os
from pathlib import Path

from mkdocs.structure.files import File, Files

SRC = "tutorials/notebook.md"
PAGE_ENV = "AUTOSPK_NOTEBOOK_PAGE"
DEFAULT_PAGE = Path("autospk-runs") / "notebook.md"

STUB = """# The notebook

`notebooks/pareto.ipynb` draws a study's front, hypervolume, energy per layer, energy models and
genes. This page shows it run on the quickstart's Pareto study once it has been rendered:

    autospk-study quickstart
    pip install -c constraints.txt -e ".[notebook]"
    python docs/render_notebook.py
    mkdocs serve

(`--storage` and `--study` render another study.) This copy of the site was built before that.
"""


def on_files(files: Files, config) -> Files:
    path = Path(os.environ.get(PAGE_ENV, DEFAULT_PAGE))
    content = path.read_text() if path.is_file() else STUB
    existing = files.get_file_from_path(SRC)
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, SRC, content=content))
    return files
