"""Errors a user can fix: the CLI prints the message on one line and exits non-zero, no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any


class UserError(Exception):
    """Bad input. The message says what is wrong and what to do instead."""


class Interrupted(BaseException):  # a BaseException: no `except Exception` may swallow it
    """SIGINT or SIGTERM arrived: unwind (removing temporary outputs) and exit with one line."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# Signals received (SIGINT/SIGTERM). The handler raises Interrupted at once, but code that swallows exceptions
# (C extensions clearing errors during their import) can lose that raise: the record makes the next checkpoint
# (before outputs are staged or committed, and at exit) raise it again.
RECEIVED: list[int] = []


def raise_if_interrupted() -> None:
    if RECEIVED:
        raise Interrupted(RECEIVED[0])


def one_line(text: object, limit: int = 200) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def field_path(loc: Sequence[Any]) -> str:
    """('runs', 0, 'total', 'device_s') -> 'runs[0].total.device_s'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _model_fields(model: Any) -> set[str]:
    """Every field name declared anywhere in a pydantic model tree (for 'did you mean')."""
    names: set[str] = set()
    seen: set[int] = set()
    todo = [model]
    while todo:
        m = todo.pop()
        if id(m) in seen or not hasattr(m, "model_fields"):
            continue
        seen.add(id(m))
        for name, f in m.model_fields.items():
            names.add(f.alias or name)
            ann = f.annotation
            todo += [a for a in (ann, *getattr(ann, "__args__", ())) if hasattr(a, "model_fields")]
            for a in getattr(ann, "__args__", ()):
                todo += [x for x in getattr(a, "__args__", ()) if hasattr(x, "model_fields")]
    return names


def close_names(name: str, known: Any) -> list[str]:
    return difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)


def from_validation(exc: Any, where: str, model: Any, hints: Mapping[str, str], default_hint: str) -> UserError:
    """The first problem of a pydantic ValidationError as one line: where, the field, what is wrong, what to do.

    `hints` maps a field name (the last part of its path) to what to write there."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err.get("loc", ()))
    path = field_path(loc)
    last = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
    kind = err.get("type", "")
    got = err.get("input")
    hint = hints.get(last, default_hint)
    if kind == "missing":
        problem = "is missing"
    elif kind == "extra_forbidden":
        near = close_names(last, _model_fields(model))
        problem = "is not a known field"
        hint = f"did you mean '{near[0]}'?" if near else f"remove it ({default_hint})"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        problem = f"must be a mapping of field: value (got {type(got).__name__})"
    elif kind == "list_type":
        problem = f"must be a list (got {type(got).__name__})"
    elif got is None and kind.endswith("_type"):
        problem = "is null"
    else:
        problem = _problem(kind, err, got)
    return UserError(one_line(f"{where}: field '{path}' {problem}: {hint}", 400))


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _problem(kind: str, err: Mapping[str, Any], got: Any) -> str:
    shown = one_line(repr(got), 40)
    ctx = err.get("ctx") or {}
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()), "?")
        return f"must be {_BOUNDS[kind]} {limit:g} (got {shown})" if isinstance(limit, float | int) else \
            f"must be {_BOUNDS[kind]} {limit} (got {shown})"
    if kind in ("float_type", "float_parsing"):
        return f"is not a number ({shown})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number (got {shown})"
    if kind == "finite_number":
        return "is not finite"
    if kind in ("string_type", "string_too_short"):
        return f"must be a non-empty string (got {shown})"
    if kind == "too_short":
        return "must not be empty"
    if kind == "too_long":
        return f"has too many entries (at most {ctx.get('max_length')})"
    if kind in ("literal_error", "enum"):
        return f"{str(err.get('msg', '')).replace('Input should be', 'must be')} (got {shown})"
    if kind == "value_error":
        return str(err.get("msg", "is invalid")).removeprefix("Value error, ")
    return f"{str(err.get('msg', 'is invalid')).replace('Input should be', 'must be')} (got {shown})"
