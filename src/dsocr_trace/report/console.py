"""The one rich console every command prints through."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader closed stdout (`| head`): stop printing and let the CLI end the run cleanly (rich's default
        exits with status 1, which would read as a failure of a run whose files were all written)."""
        self.quiet = True
        raise BrokenPipeError


def console(stderr: bool = False) -> Any:
    """A rich console at the terminal's width; piped output keeps tables on unbroken 160-column lines (rich would
    otherwise squeeze them into 80)."""
    stream = sys.stderr if stderr else sys.stdout
    wide = stream.isatty() or "COLUMNS" in os.environ
    return _Console(file=stream, width=None if wide else 160, highlight=False)
