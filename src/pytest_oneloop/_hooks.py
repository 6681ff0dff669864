"""Async tests and async fixtures, handed to the session runner.

Context model: the fixtures' context is the context pytest itself runs in.
A sync fixture that sets a ContextVar changes it directly; an async fixture
runs in a copy, and what it set is copied back with `ContextVar.set`, whose
tokens undo it when the fixture is torn down. A test runs in a fresh copy,
so nothing it sets reaches the next test.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from types import FunctionType, MethodType
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import pytest

from pytest_oneloop import _compat
from pytest_oneloop._markers import marker_names
from pytest_oneloop._runner import ITEM_TIMEOUT, OWNER, AsyncFixtureError, get_runner

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

_MISSING = object()
_FOREIGN_MARKERS = frozenset(("anyio", "trio"))
_FOREIGN = pytest.StashKey[bool]()


_Kind = Literal["coroutine", "asyncgen"] | None
#: Each test and fixture function seen, and its kind: `inspect` takes a dozen
#: Python calls to say, for every test and every fixture set-up.
_KINDS: dict[object, _Kind] = {}


def async_kind(func: object) -> _Kind:
    """Whether `func` is a coroutine function, an async generator function, or neither."""
    # A method is looked up by its function: each test binds it to a new instance.
    key = func.__func__ if type(func) is MethodType else func
    try:
        return _KINDS[key]
    except KeyError:
        pass
    except TypeError:  # unhashable: not a plain function
        return _inspect_kind(func)
    kind = _KINDS[key] = _inspect_kind(func)
    return kind


def _inspect_kind(func: object) -> _Kind:
    if type(func) is FunctionType:  # the common case, without `inspect`'s unwrapping
        flags = func.__code__.co_flags
        if flags & inspect.CO_COROUTINE:
            return "coroutine"
        if flags & inspect.CO_ASYNC_GENERATOR:
            return "asyncgen"
    if inspect.iscoroutinefunction(func):
        return "coroutine"
    if inspect.isasyncgenfunction(func):
        return "asyncgen"
    return None


def is_foreign(item: pytest.Item) -> bool:
    """Whether the test belongs to anyio's or trio's plugin rather than to us.

    Asked for the test and for each of its async fixtures: the answer is
    kept on the item.
    """
    foreign = item.stash.get(_FOREIGN, None)
    if foreign is None:
        requests_backend = "anyio_backend" in getattr(item, "fixturenames", ())
        foreign = requests_backend or not _FOREIGN_MARKERS.isdisjoint(marker_names(item))
        item.stash[_FOREIGN] = foreign
    return foreign


def _copy_back(after: contextvars.Context) -> list[contextvars.Token[Any]]:
    """Set in the current context what `after` holds differently.

    `after` began as a copy of the current context, which nothing changes
    while the loop runs (callbacks and tasks run in copies of their own).
    """
    return [var.set(value) for var, value in after.items() if var.get(_MISSING) is not value]


def _undo(tokens: Iterable[contextvars.Token[Any]]) -> None:
    for token in reversed(list(tokens)):
        token.var.reset(token)


def _test_context(item: pytest.Item) -> contextvars.Context:
    """A fresh copy of the fixtures' context, marked as belonging to `item`."""
    return _owned_copy(item)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an `async def` test as a task on the session loop."""
    func = pyfuncitem.obj
    kind = async_kind(func)
    if kind != "coroutine":
        if kind == "asyncgen":
            pytest.fail(
                f"{pyfuncitem.nodeid} is an async generator function: a test must "
                "not yield. Move the code around the 'yield' into a fixture.",
                pytrace=False,
            )
        _hypothesis_on_loop(pyfuncitem)
        return None
    if is_foreign(pyfuncitem):
        return None
    __tracebackhide__ = True
    coro = func(**_compat.test_arguments(pyfuncitem))
    get_runner(pyfuncitem.config).run(
        coro,
        _test_context(pyfuncitem),
        timeout=pyfuncitem.stash.get(ITEM_TIMEOUT, None),
        label=f"test {pyfuncitem.nodeid}",
    )
    return True


def _hypothesis_on_loop(item: pytest.Function) -> None:
    """Make hypothesis run each example of an async `@given` test on the loop."""
    hypothesis = getattr(item.obj, "hypothesis", None)
    inner = getattr(hypothesis, "inner_test", None)
    if inner is None or not inspect.iscoroutinefunction(inner) or is_foreign(item):
        return
    runner = get_runner(item.config)

    @functools.wraps(inner)
    def run_example(*args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        runner.run(inner(*args, **kwargs), _test_context(item), label=f"test {item.nodeid}")

    hypothesis.inner_test = run_example  # type: ignore[union-attr]


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Swap an async fixture's function for a sync one that drives it on the loop."""
    func = fixturedef.func
    kind = async_kind(func)
    if kind is None or is_foreign(_compat.requesting_item(request)):
        return (yield)
    bound = _compat.resolve_fixture_function(fixturedef, request)
    if kind == "coroutine":
        _compat.set_fixture_function(fixturedef, _coroutine_fixture(bound, fixturedef, request))
    else:
        _compat.set_fixture_function(fixturedef, _asyncgen_fixture(bound, fixturedef, request))
    try:
        return (yield)
    finally:
        _compat.set_fixture_function(fixturedef, func)


def _fixture_context(request: pytest.FixtureRequest, scope: str) -> contextvars.Context:
    """A copy of the current context; function-scoped work belongs to the test."""
    return _owned_copy(_compat.requesting_item(request) if scope == "function" else None)


def _owned_copy(owner: pytest.Item | None) -> contextvars.Context:
    """A copy of the current context in which `OWNER` is `owner`."""
    context = contextvars.copy_context()
    if OWNER.get() is not owner:  # often already: a function-scoped fixture's copy-back set it
        context.run(OWNER.set, owner)
    return context


def _timeout(request: pytest.FixtureRequest) -> float | None:
    return _compat.requesting_item(request).stash.get(ITEM_TIMEOUT, None)


def _check_not_running(name: str) -> None:
    if asyncio._get_running_loop() is not None:  # noqa: SLF001 - public in asyncio.events.__all__
        pytest.fail(
            f"async fixture {name!r} was requested with request.getfixturevalue() "
            "while the event loop is running (inside an async test or fixture). "
            f"Request {name!r} as an argument of the test or fixture instead.",
            pytrace=False,
        )


def _coroutine_fixture(
    bound: Callable[..., Any],
    fixturedef: pytest.FixtureDef[Any],
    request: pytest.FixtureRequest,
) -> Callable[..., Any]:
    name = fixturedef.argname

    def call_coroutine_fixture(**kwargs: Any) -> Any:
        __tracebackhide__ = True
        _check_not_running(name)
        context = _fixture_context(request, fixturedef.scope)
        result = get_runner(request.config).run(
            bound(**kwargs),
            context,
            timeout=_timeout(request),
            label=f"setup of async fixture {name!r}",
        )
        tokens = _copy_back(context)
        if tokens:
            request.addfinalizer(lambda: _undo(tokens))
        return result

    return call_coroutine_fixture


def _asyncgen_fixture(
    bound: Callable[..., Any],
    fixturedef: pytest.FixtureDef[Any],
    request: pytest.FixtureRequest,
) -> Callable[..., Generator[Any, None, None]]:
    name = fixturedef.argname

    def drive_asyncgen_fixture(**kwargs: Any) -> Generator[Any, None, None]:
        __tracebackhide__ = True
        _check_not_running(name)
        runner = get_runner(request.config)
        try:
            fixture = runner.start_asyncgen(
                bound(**kwargs),
                _fixture_context(request, fixturedef.scope),
                name,
                timeout=_timeout(request),
            )
        except AsyncFixtureError as exc:
            _fail_with_location(exc, bound)
        tokens = _copy_back(fixture.context)
        yield fixture.value
        try:
            fixture.finish()
        except AsyncFixtureError as exc:
            _fail_with_location(exc, bound)
        finally:
            _undo(tokens)

    return drive_asyncgen_fixture


def _fail_with_location(exc: AsyncFixtureError, func: Callable[..., Any]) -> NoReturn:
    __tracebackhide__ = True
    code = inspect.unwrap(func).__code__
    raise pytest.fail.Exception(
        f"{exc}\n{code.co_filename}:{code.co_firstlineno}", pytrace=False
    ) from None
