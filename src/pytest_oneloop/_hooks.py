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
from pytest_oneloop._runner import OWNER, AsyncFixtureError, AsyncGenFixture, get_runner

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from pytest_oneloop._runner import SessionRunner

_MISSING = object()
_FOREIGN_MARKERS = frozenset(("anyio", "trio"))


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
        if not hasattr(func, "_is_coroutine_marker"):  # inspect.markcoroutinefunction, 3.12+
            return None
    if inspect.iscoroutinefunction(func):
        return "coroutine"
    if inspect.isasyncgenfunction(func):
        return "asyncgen"
    return None


#: The item `is_foreign` answered for last, and its answer.
_last_foreign: tuple[pytest.Item | None, bool] = (None, False)


def is_foreign(item: pytest.Item) -> bool:
    """Whether the test belongs to anyio's or trio's plugin rather than to us.

    Asked for the test and for each of its async fixtures, one test after
    the other: the answer for the last item asked about is kept.
    """
    global _last_foreign  # noqa: PLW0603
    last, foreign = _last_foreign
    if last is not item:
        requests_backend = "anyio_backend" in getattr(item, "fixturenames", ())
        foreign = requests_backend or not _FOREIGN_MARKERS.isdisjoint(marker_names(item))
        _last_foreign = (item, foreign)
    return foreign


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
    runner = get_runner(pyfuncitem.config)
    runner.run(
        coro,
        _owned_copy(pyfuncitem),  # a fresh copy: nothing the test sets reaches the next
        timeout=runner.item_timeout,
        label=lambda: f"test {pyfuncitem.nodeid}",
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
        runner.run(inner(*args, **kwargs), _owned_copy(item), label=f"test {item.nodeid}")

    hypothesis.inner_test = run_example  # type: ignore[union-attr]


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    """Put a sync stand-in in place of an async fixture's function, for pytest to call.

    pytest's own implementation of this hook runs next and calls the
    stand-in, which first puts the fixture's function back, then drives it
    on the loop. If the stand-in is never called (another plugin's
    implementation of the hook provided the value, or raised), it stays in
    place: the next set-up recognises it by its code and starts from the
    function it replaced, and whoever reads `fixturedef.func` meanwhile
    sees that function through `__wrapped__`. Not a hook wrapper: pluggy
    spends a generator and a StopIteration on a wrapper at every fixture
    set-up, sync fixtures included.
    """
    func = fixturedef.func
    if type(func) is FunctionType and func.__code__ in _STANDIN_CODES:
        func = func.__wrapped__  # type: ignore[attr-defined]
        _compat.set_fixture_function(fixturedef, func)
    kind = async_kind(func)
    if kind is None:
        return
    item = _compat.requesting_item(request)
    if is_foreign(item):
        return
    bound = _compat.resolve_fixture_function(fixturedef, request)
    # Function-scoped work belongs to the test; wider scopes belong to nobody.
    owner = item if _compat.is_function_scoped(fixturedef) else None
    make = _coroutine_fixture if kind == "coroutine" else _asyncgen_fixture
    standin = make(fixturedef, func, bound, owner, request)
    standin.__wrapped__ = func  # type: ignore[union-attr]
    _compat.set_fixture_function(fixturedef, standin)


def _owned_copy(owner: pytest.Item | None) -> contextvars.Context:
    """A copy of the current context in which `OWNER` is `owner`."""
    context = contextvars.copy_context()
    if OWNER.get() is not owner:  # often already: a function-scoped fixture's copy-back set it
        context.run(OWNER.set, owner)
    return context


def _start_standin(
    fixturedef: pytest.FixtureDef[Any], func: Callable[..., Any], request: pytest.FixtureRequest
) -> tuple[str, SessionRunner]:
    """What both stand-ins do first; returns the fixture's name and the runner.

    Puts the fixture's own function back, and refuses to run inside a
    running loop.
    """
    _compat.set_fixture_function(fixturedef, func)
    name = fixturedef.argname
    if asyncio._get_running_loop() is not None:  # noqa: SLF001 - in asyncio.events.__all__
        pytest.fail(
            f"async fixture {name!r} was requested with request.getfixturevalue() "
            "while the event loop is running (inside an async test or fixture). "
            f"Request {name!r} as an argument of the test or fixture instead.",
            pytrace=False,
        )
    return name, get_runner(_compat.requesting_item(request).config)


def _coroutine_fixture(
    fixturedef: pytest.FixtureDef[Any],
    func: Callable[..., Any],
    bound: Callable[..., Any],
    owner: pytest.Item | None,
    request: pytest.FixtureRequest,
) -> Callable[..., Any]:
    def call_coroutine_fixture(**kwargs: Any) -> Any:
        __tracebackhide__ = True
        name, runner = _start_standin(fixturedef, func, request)
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
    fixturedef: pytest.FixtureDef[Any],
    func: Callable[..., Any],
    bound: Callable[..., Any],
    owner: pytest.Item | None,
    request: pytest.FixtureRequest,
) -> Callable[..., Generator[Any, None, None]]:
    def drive_asyncgen_fixture(**kwargs: Any) -> Generator[Any, None, None]:
        __tracebackhide__ = True
        name, runner = _start_standin(fixturedef, func, request)
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


#: The code of the two stand-ins, by which one left in place is recognised.
_NOTHING: Any = None
_STANDIN_CODES = tuple(
    make(_NOTHING, _NOTHING, _NOTHING, _NOTHING, _NOTHING).__code__
    for make in (_coroutine_fixture, _asyncgen_fixture)
)


def _fail_with_location(exc: AsyncFixtureError, func: Callable[..., Any]) -> NoReturn:
    __tracebackhide__ = True
    code = inspect.unwrap(func).__code__
    raise pytest.fail.Exception(
        f"{exc}\n{code.co_filename}:{code.co_firstlineno}", pytrace=False
    ) from None
