"""The one rich console every command prints through."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader closed stdout (`| head`): stop printing and let the CLI end the run cleanly (rich's default
        exits with status 1, which would read as a failure of a run whose files were all written)."""
        self.quiet = True
        raise BrokenPipeError


# a terminal under this many columns gets the compact summary tables (no rules, short headers and units), so no
# cell is cut at 80 columns; the tables' captions say what they shortened or left out
NARROW_COLUMNS = 120


def is_narrow(con: Any) -> bool:
    return bool(con.width < NARROW_COLUMNS)


def summary_table(title: str, narrow: bool, caption: str | None = None, tight: bool = False) -> Any:
    """A rich Table in the wide layout (heavy rules) or the narrow one (a header rule, no edge padding; `tight`:
    no cell padding either, for tables of many short columns)."""
    from rich import box
    from rich.table import Table

    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD,
                 pad_edge=not narrow, padding=(0, 0) if narrow and tight else (0, 1), caption=caption,
                 caption_justify="left")


def console(stderr: bool = False) -> Any:
    """A rich console at the terminal's width; piped output keeps tables on unbroken 160-column lines (rich would
    otherwise squeeze them into 80)."""
    stream = sys.stderr if stderr else sys.stdout
    wide = stream.isatty() or "COLUMNS" in os.environ
    return _Console(file=stream, width=None if wide else 160, highlight=False)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int, str], None]]:
    """A progress bar on stderr (drawn only on a terminal; removed when done): yields update(done, total, what)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[what]}"), console=console(stderr=True), transient=True,
                   disable=not sys.stderr.isatty())
    with bar:
        task = bar.add_task(description, total=None, what="")

        def update(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, what=what)

        yield update
