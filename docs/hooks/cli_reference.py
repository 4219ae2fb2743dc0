"""MkDocs hook: the command-line reference, generated from the real parser.

A page that holds the line ``<!-- cli-reference -->`` gets, in its place, the ``--help`` of
``autospk-study`` and of each of its commands, as `studies.cli.build_parser` prints them, so
the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os

MARKER = "<!-- cli-reference -->"


def _help(parser: argparse.ArgumentParser) -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal's width; fix it for the page
    return parser.format_help()


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    from studies.cli import build_parser

    parser = build_parser()
    parts = [f"```text\n{_help(parser)}```\n"]
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        parts.append(f"## `{name}`\n\n```text\n{_help(sub)}```\n")
    return markdown.replace(MARKER, "\n".join(parts))
