"""The on-disk cache of derived data (traces, model facts, calibration points): pickles keyed by content.

Where: $DSOCR_TRACE_CACHE, else $XDG_CACHE_HOME/dsocr-trace, else ~/.cache/dsocr-trace; DSOCR_TRACE_CACHE=off
turns it off. A cache that cannot be created or written is skipped (the work is redone), never an error.
Entries are written to a private temporary file and renamed into place, so concurrent writers of one key each
leave a whole file; every entry carries a digest of its payload, so a truncated or corrupt file is a miss.
Keys hold a fingerprint of the code that derives the data and of the torch/transformers versions, so an
entry made by other code is never read.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import orjson

_MAGIC = b"dsocr-trace-cache-1\n"
_DIGEST = 32  # sha256


def cache_dir() -> Path | None:
    """The cache folder, created if missing; None when off or not creatable."""
    env = os.environ.get("DSOCR_TRACE_CACHE")
    if env is not None and env.strip().lower() in ("off", "0", "none", ""):
        return None
    base = env or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                               "dsocr-trace")
    try:
        Path(base).mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return Path(base) if Path(base).is_dir() else None


@cache
def code_fingerprint(*packages: str) -> str:
    """A digest of the package version, the torch/transformers versions and the source of `packages`
    (sub-packages or modules of dsocr_trace): what derived data depends on."""
    h = hashlib.sha256()
    for dist in ("dsocr-trace", "torch", "transformers"):
        try:
            h.update(f"{dist}={metadata.version(dist)};".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{dist}=none;".encode())
    root = resources.files("dsocr_trace")
    for name in packages:
        node = root.joinpath(name)
        files = sorted((p for p in Path(str(node)).rglob("*.py")), key=str) if node.is_dir() else [Path(str(node))]
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:24]


def key_of(*parts: Any) -> str:
    """A stable digest of JSON-able parts (dicts sorted by key)."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=repr)).hexdigest()[:40]


def load(kind: str, key: str) -> Any | None:
    """The object stored under (kind, key), or None when missing, off, unreadable or corrupt."""
    d = cache_dir()
    if d is None:
        return None
    try:
        raw = (d / f"{kind}-{key}.pkl").read_bytes()
    except OSError:
        return None
    head = len(_MAGIC) + _DIGEST
    if len(raw) < head or not raw.startswith(_MAGIC):
        return None
    payload = raw[head:]
    if hashlib.sha256(payload).digest() != raw[len(_MAGIC):head]:
        return None
    try:
        return pickle.loads(payload)
    except Exception:  # an entry pickled by incompatible code: a miss, rebuilt and replaced
        return None


def store(kind: str, key: str, obj: Any) -> bool:
    """Write obj under (kind, key) atomically; False when the cache is off or not writable."""
    d = cache_dir()
    if d is None:
        return False
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{kind}-", suffix=".tmp", dir=d)
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, d / f"{kind}-{key}.pkl")
        return True
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


class IdentityMemo:
    """Values remembered per object identity (traces, costs, profiles: unhashable records derived once), holding
    the object so its id is not reused; the oldest entries go beyond `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: dict[int, tuple[Any, Any]] = {}

    def get(self, obj: Any, make: Callable[[], Any]) -> Any:
        hit = self._items.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        while len(self._items) >= self.limit:
            self._items.pop(next(iter(self._items)))
        value = make()
        self._items[id(obj)] = (obj, value)
        return value
