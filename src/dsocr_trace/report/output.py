"""Write outputs atomically: into a temporary sibling, renamed into place only when everything succeeded."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dsocr_trace.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_target(path: Path, force: bool, what: str = "output folder") -> None:
    if path.exists() and not force:
        raise UserError(f"{what} {str(path)!r} already exists: pass --force to replace it, or choose another path")
    parent = path.resolve().parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"cannot write the {what} {str(path)!r}: {str(parent)!r} is a file, not a folder: "
                        "choose another path")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {str(parent)!r} for the {what} ({exc.strerror}): "
                            "choose a writable path") from None
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write the {what} into {str(parent)!r} (permission denied): choose a writable path")


@contextmanager
def atomic_dir(path: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `path`, on failure it is removed."""
    check_target(path, force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.resolve().parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    os.replace(tmp, path)


@contextmanager
def atomic_file(path: Path, force: bool, what: str = "output file") -> Iterator[Path]:
    check_target(path, force, what)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.resolve().parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_umask())
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
