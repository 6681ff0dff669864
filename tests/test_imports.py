"""`module:attribute` values: what they import, and one message for each mistake."""

from __future__ import annotations

import pytest

# A conftest that loads `--spec` as the loop factory is loaded, with its wording.
LOADER = """
from pytest_oneloop._imports import import_callable

def pytest_addoption(parser):
    parser.addoption("--spec")

def pytest_configure(config):
    loaded = import_callable(
        config.getoption("spec"),
        what="loop factory",
        form="module:callable",
        example="uvloop:new_event_loop",
    )
    config.loaded = loaded

def pytest_report_header(config):
    return f"LOADED {config.loaded.__module__} {config.loaded.__qualname__}"
"""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nocolon", "expected 'module:callable', for example 'uvloop:new_event_loop'"),
        (":new_event_loop", "expected 'module:callable', for example 'uvloop:new_event_loop'"),
        ("asyncio:", "expected 'module:callable', for example 'uvloop:new_event_loop'"),
        (".events:new_event_loop", "expected 'module:callable', *"),
        ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz' (*)"),
        ("asyncio:no_such_factory", "module 'asyncio' has no attribute 'no_such_factory'"),
        ("asyncio:Runner.nothing", "module 'asyncio' has no attribute 'Runner.nothing'"),
        ("asyncio:__name__", "'__name__' is not callable"),
    ],
)
def test_each_mistake_in_a_value_is_a_usage_error_naming_the_value(
    pytester: pytest.Pytester, value: str, message: str
) -> None:
    """The form, the module, the attribute and callability each get their own message."""
    pytester.makeconftest(LOADER)
    result = pytester.runpytest(f"--spec={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: oneloop: invalid loop factory {value!r}: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_a_dotted_attribute_is_looked_up_on_the_module_step_by_step(
    pytester: pytest.Pytester,
) -> None:
    """`module:Class.method` imports the module and walks the attributes after the colon."""
    pytester.makeconftest(LOADER)
    result = pytester.runpytest("--spec=asyncio.events:AbstractEventLoop.run_forever")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["LOADED asyncio.events AbstractEventLoop.run_forever"])
