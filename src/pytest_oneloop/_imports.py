"""Objects named in the configuration as `module:attribute`, one message per mistake.

The loop factory (`--loop-factory`, `oneloop_loop_factory`) and the tables
(`oneloop_db_metadata`) are named this way. Whichever option it is, a value
that cannot be used gets the same kinds of message, each naming the value:
the wrong form, a module that does not import, a missing attribute, and,
for a callable, something that cannot be called. The loop factory's
loader and the name the report header gives it live here too.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable


def import_object(spec: str, *, what: str, form: str, example: str) -> object:
    """The object that `spec` names as `module:attribute` (the attribute may be dotted).

    Raises `pytest.UsageError` with a message that starts
    `oneloop: invalid {what} {spec!r}:` and says what is wrong; `form` and
    `example` say what a value looks like (`'module:callable'`, for example
    `'uvloop:new_event_loop'`). A relative module name is the wrong form:
    there is no package to resolve it from.
    """
    where = f"oneloop: invalid {what} {spec!r}"
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr or module_name.startswith("."):
        raise pytest.UsageError(f"{where}: expected '{form}', for example '{example}'")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise pytest.UsageError(f"{where}: cannot import module {module_name!r} ({exc})") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise pytest.UsageError(
                f"{where}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    return target


def import_callable(spec: str, *, what: str, form: str, example: str) -> Callable[..., Any]:
    """`import_object`, and a usage error too when the object cannot be called."""
    target = import_object(spec, what=what, form=form, example=example)
    if not callable(target):
        attr = spec.partition(":")[2]
        raise pytest.UsageError(f"oneloop: invalid {what} {spec!r}: {attr!r} is not callable")
    return target


def load_loop_factory(spec: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """Import `module:callable`, or raise a usage error naming the value."""
    factory: Callable[[], asyncio.AbstractEventLoop] = import_callable(
        spec, what="loop factory", form="module:callable", example="uvloop:new_event_loop"
    )
    return factory


def describe_factory(factory: Callable[[], asyncio.AbstractEventLoop] | None) -> str:
    """What makes the loop, for the report header, without making one."""
    if factory is None:
        return (
            "asyncio.SelectorEventLoop" if sys.platform != "win32" else "asyncio.ProactorEventLoop"
        )
    module = getattr(factory, "__module__", None) or type(factory).__module__
    name = getattr(factory, "__qualname__", None) or type(factory).__qualname__
    return f"{module}.{name}"
