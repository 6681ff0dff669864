"""pytest-asyncio's surface, so that a suite migrates by swapping the plugins.

A project that uninstalls pytest-asyncio keeps its configuration, its
conftests and the plugins built on pytest-asyncio. This module accepts:

- the ini keys `asyncio_mode`, `asyncio_default_fixture_loop_scope`,
  `asyncio_default_test_loop_scope` and `asyncio_debug`, and the options
  `--asyncio-mode` and `--asyncio-debug`, so that `--strict-config` and
  `filterwarnings = error` suites start and `config.getoption("asyncio_mode")`
  works (pytest-aiohttp calls it). `asyncio_debug` puts the session loop in
  debug mode; the others have no effect, since every async test and fixture
  runs on the one session loop;
- the `unused_tcp_port`, `unused_udp_port` fixtures and their `_factory`
  variants, as pytest-asyncio defines them;
- the `pytest_asyncio_loop_factories` hook: when it gives every selected
  async test the same loop factory, that factory makes the session loop.

The options and the hookspec are declared late, in
`pytest_load_initial_conftests`, when every plugin from the command line,
the entry points and `PYTEST_PLUGINS` is registered: if pytest-asyncio is
among them, declaring them again would crash pytest (argparse and pluggy
refuse duplicates) before `plugin.py` could say that the two plugins cannot
share a session.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import unittest
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pytest

from pytest_oneloop._hooks import is_foreign
from pytest_oneloop._imports import describe_factory
from pytest_oneloop._runner import get_runner
from pytest_oneloop.plugin import PYTEST_ASYNCIO_NAMES

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    LoopFactory = Callable[[], asyncio.AbstractEventLoop]

_HOOK = "pytest_asyncio_loop_factories"
_NO_EFFECT = "Accepted for pytest-asyncio compatibility; no effect with pytest-oneloop."
_SHOWN_ITEMS = 3
_CHOICE = pytest.StashKey[str]()


class LoopFactorySpecs:
    """pytest-asyncio's hook (1.4+), with its name and arguments."""

    @pytest.hookspec(firstresult=True)
    def pytest_asyncio_loop_factories(
        self,
        config: pytest.Config,  # noqa: ARG002 - a hookspec only declares its arguments
        item: pytest.Item,  # noqa: ARG002 - same reason
    ) -> Mapping[str, LoopFactory] | None:
        """Name the loop factories to run `item` with, as pytest-asyncio does.

        pytest-oneloop runs every test on one session loop, so the hook must
        give every selected async test the same single factory, which then
        makes the session loop.
        """
        return None


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare pytest-asyncio's ini keys (a second declaration is harmless)."""
    parser.addini("asyncio_mode", _NO_EFFECT + " Every async test runs.", default="auto")
    parser.addini(
        "asyncio_debug",
        "Run the session loop in asyncio debug mode (like oneloop_debug).",
        type="bool",
        default=False,
    )
    parser.addini("asyncio_default_fixture_loop_scope", _NO_EFFECT, default=None)
    parser.addini("asyncio_default_test_loop_scope", _NO_EFFECT, default="function")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser) -> None:
    """Declare the options and the hookspec, unless pytest-asyncio is here to do it."""
    pluginmanager = early_config.pluginmanager
    if any(pluginmanager.has_plugin(name) for name in PYTEST_ASYNCIO_NAMES):
        return
    group = parser.getgroup("asyncio", "pytest-asyncio options accepted by pytest-oneloop")
    options = {
        "--asyncio-mode": {
            "dest": "asyncio_mode",
            "metavar": "MODE",
            "help": _NO_EFFECT + " Every async test runs.",
        },
        "--asyncio-debug": {
            "dest": "oneloop_debug",
            "action": "store_true",
            "help": "Run the session loop in asyncio debug mode "
            "(ini: oneloop_debug, asyncio_debug).",
        },
    }
    for flag, spec in options.items():
        # A plugin that stubs pytest-asyncio may have declared them in this group.
        with contextlib.suppress(ValueError):
            group.addoption(flag, default=None, **spec)
    caller = getattr(pluginmanager.hook, _HOOK, None)
    if caller is None or not caller.has_spec():
        pluginmanager.add_hookspecs(LoopFactorySpecs)


def pytest_configure(config: pytest.Config) -> None:
    """Honour `asyncio_debug = true` (the runner exists: plugin.py made it first)."""
    runner = get_runner(config)
    if config.getini("asyncio_debug") and not runner.settings.debug and runner.made_loop is None:
        runner.settings = runner.settings._replace(debug=True)


def _runs_on_session_loop(item: pytest.Item) -> bool:
    if not isinstance(item, pytest.Function) or not inspect.iscoroutinefunction(item.obj):
        return False
    cls = item.cls
    if isinstance(cls, type) and issubclass(cls, unittest.TestCase):
        return False
    return not is_foreign(item)


def _factories(config: pytest.Config, item: pytest.Item) -> dict[str, LoopFactory] | None:
    """What the hook names for `item`, checked as pytest-asyncio checks it."""
    caller = getattr(item.ihook, _HOOK, None)
    if caller is None or not caller.get_hookimpls():
        return None
    result = caller(config=config, item=item)
    if (
        not isinstance(result, Mapping)
        or not result
        or not all(isinstance(name, str) and name and callable(f) for name, f in result.items())
    ):
        raise pytest.UsageError(
            f"oneloop: {_HOOK} returned {result!r} for {item.nodeid}: it must return "
            "a non-empty mapping of factory names to callables that make event loops."
        )
    return dict(result)


def _select(item: pytest.Item, factories: dict[str, LoopFactory]) -> dict[str, LoopFactory]:
    """The factories `@pytest.mark.asyncio(loop_factories=[...])` keeps, if it is there."""
    marker = item.get_closest_marker("asyncio")
    names = marker.kwargs.get("loop_factories") if marker is not None else None
    if names is None:
        return factories
    if isinstance(names, str) or not names:
        raise pytest.UsageError(
            f"oneloop: {item.nodeid}: mark.asyncio 'loop_factories' must be a non-empty "
            "sequence of factory names."
        )
    return {name: factories[name] for name in names if name in factories}


def _list_items(nodeids: list[str]) -> str:
    shown = ", ".join(nodeids[:_SHOWN_ITEMS])
    more = len(nodeids) - _SHOWN_ITEMS
    return f"{shown} and {more} more" if more > 0 else shown


def _choose(config: pytest.Config, item: pytest.Item) -> tuple[str, LoopFactory] | None:
    """The one factory the hook names for `item`; None when it names none."""
    factories = _factories(config, item)
    if factories is None:
        return None
    selected = _select(item, factories)
    if not selected:
        item.add_marker(
            pytest.mark.skip(
                reason="None of the loop factories in mark.asyncio(loop_factories=...) "
                f"is available. Available factories: {', '.join(factories)}."
            )
        )
        return None
    if len(selected) > 1:
        raise pytest.UsageError(
            f"oneloop: {_HOOK} names {len(selected)} loop factories for {item.nodeid} "
            f"({', '.join(map(repr, selected))}); pytest-asyncio would run the test once "
            "on each. pytest-oneloop runs every test on one session loop: make the hook "
            "return one factory (for example chosen by a command-line option of your "
            "conftest), or choose the loop with --loop-factory."
        )
    ((name, factory),) = selected.items()
    return name, factory


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter asks for report lines
def pytest_collection_finish(session: pytest.Session) -> None:
    """Make the session loop with the hook's factory, or say why that is not possible."""
    config = session.config
    runner = get_runner(config)
    if runner.settings.factory_spec is not None:
        return  # --loop-factory / oneloop_loop_factory is the user's explicit choice.
    caller = getattr(config.hook, _HOOK, None)
    if caller is None or not caller.get_hookimpls():
        return  # No conftest or plugin implements the hook: nothing to ask per test.
    uses: list[tuple[str, LoopFactory, list[str]]] = []
    for item in session.items:
        choice = _runs_on_session_loop(item) and _choose(config, item)
        if not choice:
            continue
        name, factory = choice
        # Compared with ==, not hashed: a callable object need not be hashable.
        use = next((use for use in uses if use[1] == factory), None)
        if use is None:
            uses.append((name, factory, [item.nodeid]))
        else:
            use[2].append(item.nodeid)
    if not uses:
        return
    if len(uses) > 1:
        which = "; ".join(
            f"{name!r} ({describe_factory(factory)}) for {_list_items(nodeids)}"
            for name, factory, nodeids in uses
        )
        raise pytest.UsageError(
            f"oneloop: {_HOOK} gives the selected tests different event loops: {which}. "
            "pytest-oneloop runs every test of a session on one loop: run these tests "
            "in separate pytest sessions, or make the hook return the same factory."
        )
    ((name, factory, nodeids),) = uses
    if runner.made_loop is not None:
        raise pytest.UsageError(
            f"oneloop: {_HOOK} names the loop factory {name!r} for {_list_items(nodeids)}, "
            "but the session loop was already created before collection finished."
        )
    described = describe_factory(factory)
    runner.use_loop_factory(factory, described)
    config.stash[_CHOICE] = f"{name!r} ({described})"


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    """Say which loop the hook chose: the header, printed before collection, cannot."""
    choice = config.stash.get(_CHOICE, None)
    return None if choice is None else f"oneloop: loop={choice} from {_HOOK}"


def _unused_port(kind: socket.SocketKind) -> int:
    """A port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(type=kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_factory(kind: socket.SocketKind) -> Callable[[], int]:
    produced: set[int] = set()

    def unused_port() -> int:
        port = _unused_port(kind)
        while port in produced:
            port = _unused_port(kind)
        produced.add(port)
        return port

    return unused_port


@pytest.fixture
def unused_tcp_port() -> int:
    """An unused TCP port on 127.0.0.1, as pytest-asyncio's fixture of that name."""
    return _unused_port(socket.SOCK_STREAM)


@pytest.fixture
def unused_udp_port() -> int:
    """An unused UDP port on 127.0.0.1, as pytest-asyncio's fixture of that name."""
    return _unused_port(socket.SOCK_DGRAM)


@pytest.fixture(scope="session")
def unused_tcp_port_factory() -> Callable[[], int]:
    """A function returning an unused TCP port, never the same one twice in a session."""
    return _port_factory(socket.SOCK_STREAM)


@pytest.fixture(scope="session")
def unused_udp_port_factory() -> Callable[[], int]:
    """A function returning an unused UDP port, never the same one twice in a session."""
    return _port_factory(socket.SOCK_DGRAM)
