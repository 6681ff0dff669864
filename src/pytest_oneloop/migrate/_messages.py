"""The text of every case the command leaves to a person: what it is and what to do.

Each is printed as `path:line: message`; tests assert these texts.
"""

from __future__ import annotations

LOOP_FACTORY_HINT = (
    "to choose the loop, set `oneloop_loop_factory = MODULE:CALLABLE` in the pytest "
    "configuration (e.g. `uvloop:new_event_loop`) or pass `--loop-factory`"
)


def other_use(name: str) -> str:
    """A use of pytest-asyncio that has no rewrite."""
    if name == "pytest_asyncio.is_async_test":
        return (
            "`pytest_asyncio.is_async_test` is used other than as `is_async_test(item)`: "
            "test each item with `inspect.iscoroutinefunction(item.obj)` instead"
        )
    return (
        f"`{name}` is pytest-asyncio's, and pytest-oneloop has no counterpart: rewrite "
        "this by hand (pytest-oneloop's docs/migrating.md says what each feature becomes)"
    )


def loop_fixture(name: str) -> str:
    """A user-defined `event_loop` or `event_loop_policy` fixture."""
    return (
        f"the fixture '{name}' overrides pytest-asyncio's, and pytest-oneloop never "
        f"requests it (every test runs on one session loop): delete it; {LOOP_FACTORY_HINT}"
    )


def sync_event_loop(name: str) -> str:
    """A sync test or fixture that requests `event_loop`."""
    return (
        f"'{name}' is not async and requests `event_loop`, which pytest-oneloop does not "
        "provide: make it `async def`, await what it ran on the loop, and use "
        "`asyncio.get_running_loop()` where it needs the loop"
    )


def wide_get_event_loop(name: str, scope: str) -> str:
    """`asyncio.get_event_loop()` in a fixture wider than a function."""
    return (
        f"`asyncio.get_event_loop()` in the {scope}-scoped fixture '{name}': make the "
        "fixture `async def` and use `asyncio.get_running_loop()`, the session loop"
    )


def event_loop_by_name() -> str:
    """`usefixtures("event_loop")` or `getfixturevalue("event_loop")`."""
    return (
        "the `event_loop` fixture is requested by name, and pytest-oneloop has none: "
        "remove the request and use `asyncio.get_running_loop()` in async code"
    )


def locked_requirement(name: str) -> str:
    """A pinned pytest-asyncio with hashes: a lock file to regenerate."""
    return (
        f"`{name}` is pinned with hashes: regenerate this file with pytest-oneloop "
        "in place of pytest-asyncio"
    )


def table_requirement(table: str) -> str:
    """pytest-asyncio as a key of a dependency table (Poetry)."""
    return f"pytest-asyncio in [{table}]: replace it with pytest-oneloop"
