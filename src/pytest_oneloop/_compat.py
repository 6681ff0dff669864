"""The one module that touches pytest's private internals.

Covers pytest 8.4.x and 9.x. Everything else in the plugin uses the public
API only, so a pytest upgrade that moves these names breaks this file alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from _pytest.fixtures import resolve_fixture_function as _resolve_fixture_function

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest


def resolve_fixture_function(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Callable[..., Any]:
    """The fixture's function, bound to the test's instance as pytest binds it."""
    return _resolve_fixture_function(fixturedef, request)


def test_arguments(item: pytest.Function) -> dict[str, Any]:
    """The keyword arguments pytest itself would pass to the test function."""
    funcargs = item.funcargs
    return {name: funcargs[name] for name in item._fixtureinfo.argnames}  # noqa: SLF001


def requesting_item(request: pytest.FixtureRequest) -> pytest.Item:
    """The test item on whose behalf a fixture is being set up."""
    item: pytest.Item = request._pyfuncitem  # noqa: SLF001
    return item


def set_fixture_function(fixturedef: pytest.FixtureDef[Any], func: Callable[..., Any]) -> None:
    """Replace the function pytest calls to set the fixture up.

    `FixtureDef.func` is final in pytest's annotations; swapping it for the
    duration of `pytest_fixture_setup` is how async fixtures are run.
    """
    fixturedef.func = func  # type: ignore[misc]


def option_names(parser: pytest.Parser) -> set[str]:
    """Every option string registered so far, such as `-v` and `--verbose`.

    pytest 9 keeps the anonymous group in `Parser._groups`, pytest 8.4 beside it.
    """
    groups = [parser._anonymous, *parser._groups]  # noqa: SLF001
    return {name for group in groups for option in group.options for name in option.names()}


def skip_assertion_rewriting(manager: pytest.PytestPluginManager, package: str) -> None:
    """Have pytest import the rest of `package` without rewriting its asserts.

    pytest marks every module of a distribution with a `pytest11` entry
    point for assertion rewriting, and loads a marked module's cached byte
    code through its own reader, which takes about half a millisecond per
    module. The plugin's modules have no assert statements to rewrite. If
    pytest's import hook changes, this does nothing and they are rewritten.
    """
    hook = getattr(manager, "rewrite_hook", None)
    marked = getattr(hook, "_must_rewrite", None)
    decided = getattr(hook, "_marked_for_rewrite_cache", None)
    if isinstance(marked, set) and package in marked and isinstance(decided, dict):
        marked.discard(package)
        decided.clear()
