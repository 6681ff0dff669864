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
import time
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import pytest

from pytest_oneloop import _compat
from pytest_oneloop._markers import marker_names
from pytest_oneloop._runner import OWNER, AsyncFixtureError, AsyncGenFixture, get_runner

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from pytest_oneloop._runner import SessionRunner

_MISSING = object()
_FOREIGN_MARKERS = frozenset(("anyio", "trio"))


def async_kind(func: object) -> Literal["coroutine", "asyncgen"] | None:
    """Whether `func` is a coroutine function, an async generator function, or neither."""
    if inspect.iscoroutinefunction(func):
        return "coroutine"
    if inspect.isasyncgenfunction(func):
        return "asyncgen"
    return None


def is_foreign(item: pytest.Item) -> bool:
    """Whether the test belongs to anyio's or trio's plugin rather than to us."""
    return "anyio_backend" in getattr(item, "fixturenames", ()) or not _FOREIGN_MARKERS.isdisjoint(
        marker_names(item)
    )


def _copy_back(after: contextvars.Context) -> list[contextvars.Token[Any]]:
    """Set in the current context what `after` holds differently.

    `after` began as a copy of the current context, which nothing changes
    while the loop runs (callbacks and tasks run in copies of their own).
    """
    tokens = []
    for var, value in after.items():
        if var.get(_MISSING) is not value:
            tokens.append(var.set(value))
    return tokens


def _undo(tokens: list[contextvars.Token[Any]]) -> None:
    for token in reversed(tokens):
        token.var.reset(token)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an `async def` test as a task on the session loop."""
    func = pyfuncitem.obj
    kind = async_kind(func)
    if kind == "asyncgen":
        pytest.fail(
            f"{pyfuncitem.nodeid} is an async generator function: a test must "
            "not yield. Move the code around the 'yield' into a fixture.",
            pytrace=False,
        )
    if kind is None:
        return _run_hypothesis_test(pyfuncitem)
    if is_foreign(pyfuncitem):
        return None
    __tracebackhide__ = True
    runner = get_runner(pyfuncitem.config)
    runner.run(
        func(**_compat.test_arguments(pyfuncitem)),
        _owned_copy(pyfuncitem),  # a fresh copy: nothing the test sets reaches the next
        timeout=runner.item_timeout,
        label=f"test {pyfuncitem.nodeid}",
    )
    return True


def _run_hypothesis_test(item: pytest.Function) -> bool | None:
    """Run an async `@given` test, each of its examples on the session loop.

    hypothesis calls `inner_test` for each example it tries; while this test
    runs, that is a function running the example as a task owned by this
    test, within what is left of the test's time limit. Parametrized tests
    share one function object, so it is put back afterwards.
    """
    hypothesis = getattr(item.obj, "hypothesis", None)
    inner = getattr(hypothesis, "inner_test", None)
    if inner is None or not inspect.iscoroutinefunction(inner) or is_foreign(item):
        return None
    __tracebackhide__ = True
    runner = get_runner(item.config)
    limit = runner.item_timeout
    ends = None if limit is None else time.monotonic() + limit
    label = f"test {item.nodeid}"

    @functools.wraps(inner)
    def run_example(*args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        left = None if ends is None else max(ends - time.monotonic(), 0.0)
        runner.run(
            inner(*args, **kwargs), _owned_copy(item), timeout=left, label=label, limit=limit
        )

    hypothesis.inner_test = run_example  # type: ignore[union-attr]
    try:
        item.obj(**_compat.test_arguments(item))
    finally:
        hypothesis.inner_test = inner  # type: ignore[union-attr]
    return True


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Have pytest set an async fixture up through a sync stand-in that drives it on the loop.

    pytest's own implementation of this hook calls `fixturedef.func`: for the
    duration of the hook that is the stand-in, so pytest's caching, scopes,
    finalizers and error reports apply to async fixtures unchanged.
    """
    func = fixturedef.func
    kind = async_kind(func)
    if kind is None or is_foreign(item := _compat.requesting_item(request)):
        return (yield)
    bound = _compat.resolve_fixture_function(fixturedef, request)
    # Function-scoped work belongs to the test; wider scopes belong to nobody.
    owner = item if fixturedef.scope == "function" else None
    make = _coroutine_fixture if kind == "coroutine" else _asyncgen_fixture
    standin = make(fixturedef.argname, bound, owner, request)
    standin.__wrapped__ = func  # type: ignore[union-attr]  # for hooks that unwrap it
    _compat.set_fixture_function(fixturedef, standin)
    try:
        return (yield)
    finally:
        _compat.set_fixture_function(fixturedef, func)


def _owned_copy(owner: pytest.Item | None) -> contextvars.Context:
    """A copy of the current context in which `OWNER` is `owner`."""
    context = contextvars.copy_context()
    context.run(OWNER.set, owner)
    return context


def _start(name: str, request: pytest.FixtureRequest) -> SessionRunner:
    """The runner, once sure that the loop is not running already."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return get_runner(request.config)
    pytest.fail(
        f"async fixture {name!r} was requested with request.getfixturevalue() "
        "while the event loop is running (inside an async test or fixture). "
        f"Request {name!r} as an argument of the test or fixture instead.",
        pytrace=False,
    )


def _coroutine_fixture(
    name: str, bound: Callable[..., Any], owner: pytest.Item | None, request: pytest.FixtureRequest
) -> Callable[..., Any]:
    def call_coroutine_fixture(**kwargs: Any) -> Any:
        __tracebackhide__ = True
        runner = _start(name, request)
        context = _owned_copy(owner)
        result = runner.run(
            bound(**kwargs),
            context,
            timeout=runner.item_timeout,
            label=f"setup of async fixture {name!r}",
        )
        tokens = _copy_back(context)
        if tokens:
            request.addfinalizer(lambda: _undo(tokens))
        return result

    return call_coroutine_fixture


def _asyncgen_fixture(
    name: str, bound: Callable[..., Any], owner: pytest.Item | None, request: pytest.FixtureRequest
) -> Callable[..., Generator[Any, None, None]]:
    def drive_asyncgen_fixture(**kwargs: Any) -> Generator[Any, None, None]:
        __tracebackhide__ = True
        runner = _start(name, request)
        try:
            fixture = AsyncGenFixture(
                runner, bound(**kwargs), _owned_copy(owner), name, runner.item_timeout
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
            if tokens:
                _undo(tokens)

    return drive_asyncgen_fixture


def _fail_with_location(exc: AsyncFixtureError, func: Callable[..., Any]) -> NoReturn:
    __tracebackhide__ = True
    code = inspect.unwrap(func).__code__
    raise pytest.fail.Exception(
        f"{exc}\n{code.co_filename}:{code.co_firstlineno}", pytrace=False
    ) from None
