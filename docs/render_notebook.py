"""Run notebooks/pareto.ipynb on a study and write it as a page of the documentation site.

    python docs/render_notebook.py [--storage sqlite:///autospk.db] [--study digits-pareto]
        [--output autospk-runs/notebook.md]
    mkdocs build --strict        # or mkdocs serve: the site's "The notebook" page shows it

After the quickstart the defaults render its Pareto study. The page holds every cell of the
notebook, its text and tables, and its figures, drawn by plotly.js (inlined once in the page, so
it works offline). It is generated: it lives beside the quickstart's files, not in git, and the
site shows how to make it until it exists (docs/hooks/notebook_page.py). Needs the notebook
extra (``pip install -e ".[notebook]"``) or the test extra.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "pareto.ipynb"
DEFAULT_PAGE = Path("autospk-runs") / "notebook.md"
PAGE_ENV = "AUTOSPK_NOTEBOOK_PAGE"
"""Where the site's hook looks for the page (default `DEFAULT_PAGE`, relative to the folder
mkdocs runs in)."""
PLOTLY = "application/vnd.plotly.v1+json"


def execute(storage: str, study: str, workdir: Path):
    """The notebook, run on `study` of `storage` (its parameters cell replaced), in `workdir`."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if "parameters" not in code[0].metadata.get("tags", []):
        raise SystemExit(f"{NOTEBOOK}: its first code cell is not tagged 'parameters'")
    code[0].source = f"STORAGE = {storage!r}\nSTUDY = {study!r}"
    # The kernel imports this checkout's code, wherever it starts.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    NotebookClient(notebook, kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return notebook


def _fenced(text: str, language: str = "") -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}{language}\n{text.rstrip()}\n{fence}\n"


def _output(out: dict) -> str:
    """One output as markdown: text fenced, tables and figures as HTML."""
    if out["output_type"] == "stream":
        return _fenced("".join(out["text"]), "text")
    if out["output_type"] == "error":
        return _fenced("\n".join(out["traceback"]), "text")
    data = out.get("data", {})
    if PLOTLY in data or "text/html" in data:
        # A figure's HTML copy (studies.plots.use_notebook_renderers) or a pandas table.
        return f'<div class="autospk-output" markdown="0">\n{"".join(data["text/html"])}\n</div>\n'
    if "text/plain" in data:
        return _fenced("".join(data["text/plain"]), "text")
    return ""


def page(notebook, storage: str, study: str) -> str:
    """The executed notebook as one markdown page."""
    parts = ["# The notebook\n",
             f"`notebooks/pareto.ipynb` run on study `{html.escape(study)}` of `{html.escape(storage)}` "
             "(rendered by `python docs/render_notebook.py`). Hover a point for its architecture; the buttons "
             "switch energy axes to a log scale.\n"]
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source + "\n")
        elif cell.cell_type == "code":
            parts.append(_fenced(cell.source, "python"))
            parts.extend(_output(out) for out in cell.get("outputs", []))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", default="sqlite:///autospk.db", help="storage URL of the study")
    parser.add_argument("--study", default="digits-pareto", help="study to show (the quickstart's Pareto study)")
    parser.add_argument("--output", type=Path, default=Path(os.environ.get(PAGE_ENV, DEFAULT_PAGE)),
                        help=f"the page (default: ${PAGE_ENV}, else {DEFAULT_PAGE})")
    args = parser.parse_args(argv)
    notebook = execute(args.storage, args.study, Path.cwd())
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out["output_type"] == "error"]
    if errors:
        print(f"render_notebook: a cell failed: {errors[0]['ename']}: {errors[0]['evalue']}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(page(notebook, args.storage, args.study))
    tmp.replace(args.output)
    print(f"wrote {args.output}; mkdocs build (or serve) shows it as the page 'The notebook'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
