"""Write a command's outputs as one transaction: staged in hidden temporaries, moved into place together at the end.

`Outputs` checks every target before any work (exists without --force, a parent that is a file, a folder that
cannot be written), creates nothing until the end, stages each output in a hidden folder beside its nearest
existing ancestor and, when everything is written, creates the missing parent folders and renames the staged
outputs into place with SIGINT/SIGTERM held off. On any failure or interruption the staging folders are removed:
no half-written output, no empty parent folders, no hidden leftovers. A file target inside a folder target
(`--timeline run/t.json --out run`) is written inside the staged folder.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from attrs import define, field

from dsocr_trace.errors import UserError, raise_if_interrupted

STAGING_PREFIX = ".dsocr-trace-staging."
_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_target(path: Path, force: bool, what: str = "output folder", is_dir: bool | None = None) -> None:
    """Refuse a target that exists (without --force) or cannot be created; creates nothing."""
    if path.exists() and not force:
        raise UserError(f"{what} {str(path)!r} already exists: pass --force to replace it, or choose another path")
    if path.exists() and Path.cwd().resolve().is_relative_to(path.resolve()):
        raise UserError(f"{what} {str(path)!r} holds the current folder: --force would delete it, choose a "
                        "new path")
    if path.exists() and is_dir is not None and path.is_dir() != is_dir:
        kind = "folder" if path.is_dir() else "file"
        raise UserError(f"{what} {str(path)!r} exists as a {kind}: --force replaces a "
                        f"{'folder' if is_dir else 'file'} only, choose another path")
    parent = path.absolute().parent
    anchor = _nearest_existing(parent)
    if not anchor.is_dir():
        raise UserError(f"cannot write the {what} {str(path)!r}: {str(anchor)!r} is a file, not a folder: "
                        "choose another path")
    try:  # the only sure test of writability (root passes os.access everywhere, /proc refuses anyway)
        os.rmdir(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=anchor))
    except OSError as exc:
        raise UserError(f"cannot write the {what} into {str(anchor)!r} ({exc.strerror or exc}): "
                        "choose a writable path") from None


@define
class _Target:
    path: Path  # absolute
    shown: Path  # as the user wrote it
    is_dir: bool
    what: str
    inside: _Target | None = None  # the folder target this one is written into
    staged: Path | None = None


@define
class Outputs:
    """The outputs of one command. Declare them (checked at once), then write them inside `transaction()`."""

    force: bool
    targets: list[_Target] = field(factory=list)

    def folder(self, path: Path | None, what: str = "output folder") -> None:
        self._add(path, True, what)

    def file(self, path: Path | None, what: str = "output file") -> None:
        self._add(path, False, what)

    def _add(self, path: Path | None, is_dir: bool, what: str) -> None:
        if path is None:
            return
        t = _Target(path=Path(os.path.abspath(path)), shown=path, is_dir=is_dir, what=what)
        for other in self.targets:
            if other.path == t.path:
                raise UserError(f"the {what} and the {other.what} are the same path {str(path)!r}: give them "
                                "different paths")
            if t.path.is_relative_to(other.path):
                if not other.is_dir:
                    raise UserError(f"the {what} {str(path)!r} lies inside the {other.what} {str(other.shown)!r}, "
                                    "which is a file: choose another path")
                t.inside = other
            elif other.path.is_relative_to(t.path):
                if not is_dir:
                    raise UserError(f"the {other.what} {str(other.shown)!r} lies inside the {what} {str(path)!r}, "
                                    "which is a file: choose another path")
                if other.inside is None:
                    other.inside = t
        if t.inside is None:
            check_target(path, self.force, what, is_dir)
        self.targets.append(t)

    def path(self, path: Path) -> Path:
        """Where to write `path` during the transaction."""
        want = Path(os.path.abspath(path))
        for t in self.targets:
            if t.path == want and t.staged is not None:
                return t.staged
        raise KeyError(f"{path} is not a declared output")

    @contextmanager
    def transaction(self) -> Iterator[Callable[[Path], Path]]:
        roots: dict[Path, Path] = {}
        raise_if_interrupted()
        try:
            for t in self.targets:
                if t.inside is None:
                    anchor = _nearest_existing(t.path.parent)
                    if anchor not in roots:
                        root = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=anchor))
                        root.chmod(0o777 & ~_umask())
                        roots[anchor] = root
                    t.staged = roots[anchor] / f"{len(roots)}-{t.path.name}"
                else:
                    assert t.inside.staged is not None
                    t.staged = t.inside.staged / t.path.relative_to(t.inside.path)
                if t.is_dir:
                    t.staged.mkdir(parents=True)
                else:
                    t.staged.parent.mkdir(parents=True, exist_ok=True)
            yield self.path
            raise_if_interrupted()
            self._commit()
        finally:
            held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)  # a second Ctrl-C must not cut the cleanup
            try:
                for root in roots.values():
                    shutil.rmtree(root, ignore_errors=True)
                for t in self.targets:
                    t.staged = None
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _commit(self) -> None:
        """Create missing parents and rename every staged output into place, signals held off meanwhile."""
        for t in self.targets:
            if t.staged is not None and not t.staged.exists():
                raise UserError(f"the {t.what} {str(t.shown)!r} was not written: nothing was changed")
            if t.inside is None and not self.force and os.path.lexists(t.path):
                raise _appeared(t)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
        created: list[Path] = []
        try:
            for t in self.targets:
                if t.inside is not None or t.staged is None:
                    continue
                missing = []
                p = t.path.parent
                while not p.exists():
                    missing.append(p)
                    p = p.parent
                for d in reversed(missing):
                    d.mkdir()
                    created.append(d)
                if t.path.exists():  # --force: replace like with like (checked up front)
                    if t.path.is_dir() and not t.path.is_symlink():
                        shutil.rmtree(t.path)
                    else:
                        t.path.unlink()
                if not t.is_dir:
                    t.staged.chmod(0o666 & ~_umask())
                if self.force:
                    os.replace(t.staged, t.path)
                elif t.is_dir:
                    try:  # onto a path that appeared since the check: a non-empty folder refuses the rename
                        os.rename(t.staged, t.path)
                    except OSError as exc:
                        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                            raise _appeared(t) from None
                        raise
                else:
                    try:  # link, not rename: a file written meanwhile by someone else is never replaced
                        os.link(t.staged, t.path)
                    except FileExistsError:
                        raise _appeared(t) from None
                    except OSError as exc:  # a file system without hard links: checked just above, rename
                        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                            raise
                        os.rename(t.staged, t.path)
                    else:
                        t.staged.unlink()
        except BaseException:
            for d in reversed(created):
                try:
                    d.rmdir()
                except OSError:
                    pass
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _appeared(t: _Target) -> UserError:
    return UserError(f"{t.what} {str(t.shown)!r} appeared while this run was working (another run or program "
                     "wrote it): it was left as it is and nothing was written; rerun with another path, or "
                     "--force to replace it")


@contextmanager
def atomic_dir(path: Path, force: bool, what: str = "output folder") -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `path`, on failure it is removed."""
    outs = Outputs(force)
    outs.folder(path, what)
    with outs.transaction() as where:
        yield where(path)


@contextmanager
def atomic_file(path: Path, force: bool, what: str = "output file") -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces `path`, on failure it is removed."""
    outs = Outputs(force)
    outs.file(path, what)
    with outs.transaction() as where:
        yield where(path)
