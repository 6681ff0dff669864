"""The pytest11 entry point `oneloop`: options, markers, the header line.

The features live in their own modules, listed in `FEATURES` and registered
as plugins of their own right after this one; they share state only through
`config.stash`. `-p no:oneloop` disables them all, `-p no:<module>` one.
"""

from __future__ import annotations

import importlib
import sys

import pytest

from pytest_oneloop import _compat
from pytest_oneloop._runner import (
    STASH_KEY,
    LoopSettings,
    SessionRunner,
    describe_factory,
    load_loop_factory,
)

#: The feature modules, registered in this order under their module names.
FEATURES = (
    "pytest_oneloop._hooks",
    "pytest_oneloop._tasks",
    "pytest_oneloop._hygiene",
    "pytest_oneloop._vtime",
    "pytest_oneloop._blocking",
    "pytest_oneloop._groups",
    "pytest_oneloop.sqlalchemy.fixtures",
    "pytest_oneloop._migrate",
)

#: The names pytest-asyncio's plugin is registered under (entry point, module).
PYTEST_ASYNCIO_NAMES = ("asyncio", "pytest_asyncio.plugin")

PYTEST_ASYNCIO_CONFLICT = (
    "oneloop: pytest-asyncio is active in this session too, and both plugins run "
    "async tests. Choose one: pass '-p no:asyncio' to run with pytest-oneloop, "
    "or '-p no:oneloop' to run with pytest-asyncio (for example in addopts), "
    "or uninstall the one you do not use."
)


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    """Once this module is registered, register the feature modules.

    What `pytest_plugins = [...]` would do, at the same moment, without its
    cost: pytest looks each listed name up among the entry points of every
    installed distribution first, which made up a third of the plugin's
    start-up time.
    """
    if plugin is not sys.modules[__name__]:
        return
    _compat.skip_assertion_rewriting(manager, __package__ or "pytest_oneloop")
    for name in FEATURES:
        if not manager.is_blocked(name) and manager.get_plugin(name) is None:
            manager.register(importlib.import_module(name), name)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the command-line flags and ini options (all `oneloop_*`)."""
    group = parser.getgroup("oneloop", "async tests on one event loop (pytest-oneloop)")
    group.addoption(
        "--loop-factory",
        dest="oneloop_loop_factory",
        metavar="MODULE:CALLABLE",
        default=None,
        help="Callable that makes the session's event loop, e.g. uvloop:new_event_loop. "
        "Overrides the oneloop_loop_factory ini option.",
    )
    parser.addini(
        "oneloop_loop_factory",
        "Callable that makes the session's event loop, as 'module:callable'.",
        default="",
    )
    parser.addini(
        "oneloop_debug",
        "Run the session loop in asyncio debug mode.",
        type="bool",
        default=False,
    )
    parser.addini(
        "oneloop_fast_loop",
        "Drive asyncio's own loop without run_until_complete's extra turn (default); "
        "false: through run_until_complete, asyncio's public API only.",
        type="bool",
        default=True,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Refuse to share the session with pytest-asyncio, then prepare the runner."""
    if any(config.pluginmanager.has_plugin(name) for name in PYTEST_ASYNCIO_NAMES):
        raise pytest.UsageError(PYTEST_ASYNCIO_CONFLICT)
    config.addinivalue_line(
        "markers",
        "asyncio: accepted for compatibility with pytest-asyncio and ignored; "
        "every async test runs on the session loop.",
    )
    config.stash[STASH_KEY] = SessionRunner(loop_settings(config))


def loop_settings(config: pytest.Config) -> LoopSettings:
    """The loop factory, debug flag and driver choice, command line first, then ini."""
    spec = config.getoption("oneloop_loop_factory") or config.getini("oneloop_loop_factory")
    spec = spec.strip() if isinstance(spec, str) else ""
    debug = config.getoption("oneloop_debug")
    if debug is None:
        debug = bool(config.getini("oneloop_debug"))
    factory = load_loop_factory(spec) if spec else None
    return LoopSettings(
        factory=factory,
        factory_spec=spec or None,
        debug=bool(debug),
        fast=bool(config.getini("oneloop_fast_loop")),
    )


def pytest_report_header(config: pytest.Config) -> str:
    """One line naming the loop in use, e.g. `oneloop: loop=... debug=False`."""
    settings = config.stash[STASH_KEY].settings
    return f"oneloop: loop={describe_factory(settings.factory)} debug={settings.debug}"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Close the session loop once every fixture has been torn down."""
    _close(session.config)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the loop if the session ended before `pytest_sessionfinish`."""
    _close(config)


def _close(config: pytest.Config) -> None:
    runner = config.stash.get(STASH_KEY, None)
    if runner is not None:
        runner.close()
