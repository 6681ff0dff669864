"""`pytest-oneloop migrate` on Python modules: every rewrite as a pair, every manual case.

The pairs run through `migrate_python` twice: the second pass must change nothing.
"""

from __future__ import annotations

import textwrap

import pytest

from pytest_oneloop.migrate._code import migrate_python
from pytest_oneloop.migrate._messages import (
    event_loop_by_name,
    loop_fixture,
    other_use,
    sync_event_loop,
    wide_get_event_loop,
)
from pytest_oneloop.migrate._result import Finding, UnparsableError


def _migrate(source: str, *, keep_markers: bool = False) -> tuple[str, list[Finding]]:
    outcome = migrate_python(textwrap.dedent(source).encode(), keep_markers=keep_markers)
    return outcome.text.decode(), list(outcome.findings)


REWRITES = {
    "fixture_decorator": (
        """\
        import pytest_asyncio


        @pytest_asyncio.fixture
        async def client():
            yield 1
        """,
        """\
        import pytest


        @pytest.fixture
        async def client():
            yield 1
        """,
    ),
    "fixture_loop_scope_dropped": (
        """\
        import pytest
        import pytest_asyncio


        @pytest_asyncio.fixture(scope="module", loop_scope="module")
        async def client():
            yield 1


        @pytest_asyncio.fixture(loop_scope="session")
        async def server():
            return 2
        """,
        """\
        import pytest


        @pytest.fixture(scope="module")
        async def client():
            yield 1


        @pytest.fixture
        async def server():
            return 2
        """,
    ),
    "fixture_imported_by_name_and_alias": (
        """\
        from pytest_asyncio import fixture
        from pytest_asyncio import fixture as async_fixture
        import pytest_asyncio as pa


        @fixture
        async def one():
            return 1


        @async_fixture(loop_scope="module")
        async def two():
            return 2


        three = pa.fixture(scope="session")(lambda: 3)
        """,
        """\
        import pytest


        @pytest.fixture
        async def one():
            return 1


        @pytest.fixture
        async def two():
            return 2


        three = pytest.fixture(scope="session")(lambda: 3)
        """,
    ),
    "markers_dropped_with_comments_kept": (
        """\
        import pytest


        # runs on the module's loop
        @pytest.mark.asyncio(loop_scope="module")
        @pytest.mark.parametrize("n", [1])  # one case
        async def test_one(n):
            assert n


        @pytest.mark.asyncio
        class TestGroup:
            async def test_two(self):
                pass
        """,
        """\
        import pytest


        # runs on the module's loop
        @pytest.mark.parametrize("n", [1])  # one case
        async def test_one(n):
            assert n


        class TestGroup:
            async def test_two(self):
                pass
        """,
    ),
    "loop_factories_marker_kept": (
        """\
        import pytest


        @pytest.mark.asyncio(loop_factories=["custom"])
        async def test_on_custom():
            pass
        """,
        None,
    ),
    "pytestmark_alone": (
        """\
        import pytest

        pytestmark = pytest.mark.asyncio


        class TestGroup:
            pytestmark = pytest.mark.asyncio(loop_scope="class")

            async def test_one(self):
                pass
        """,
        """\
        import pytest


        class TestGroup:
            async def test_one(self):
                pass
        """,
    ),
    "pytestmark_in_a_list_or_tuple": (
        """\
        import pytest

        pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
        other: list[pytest.MarkDecorator] = []


        class TestOne:
            pytestmark = (pytest.mark.slow, pytest.mark.asyncio(loop_scope="class"))


        class TestTwo:
            pytestmark: list[pytest.MarkDecorator] = [
                pytest.mark.slow,
                pytest.mark.asyncio,
            ]
        """,
        """\
        import pytest

        pytestmark = [pytest.mark.slow]
        other: list[pytest.MarkDecorator] = []


        class TestOne:
            pytestmark = (pytest.mark.slow,)


        class TestTwo:
            pytestmark: list[pytest.MarkDecorator] = [
                pytest.mark.slow,
            ]
        """,
    ),
    "event_loop_parameter_becomes_get_running_loop": (
        """\
        import pytest


        @pytest.fixture
        async def server(event_loop, unused_tcp_port):
            yield event_loop.time()


        class TestServer:
            async def test_uses_the_loop(self, server, event_loop):
                event_loop.call_soon(print)
        """,
        """\
        import pytest
        import asyncio


        @pytest.fixture
        async def server(unused_tcp_port):
            yield asyncio.get_running_loop().time()


        class TestServer:
            async def test_uses_the_loop(self, server):
                asyncio.get_running_loop().call_soon(print)
        """,
    ),
    "event_loop_in_a_closure_is_bound_first": (
        """\
        import asyncio


        async def test_threads(event_loop):
            \"\"\"A callback from another thread.\"\"\"
            done = asyncio.Event()
            await asyncio.to_thread(lambda: event_loop.call_soon_threadsafe(done.set))
            await done.wait()
        """,
        """\
        import asyncio


        async def test_threads():
            \"\"\"A callback from another thread.\"\"\"
            event_loop = asyncio.get_running_loop()
            done = asyncio.Event()
            await asyncio.to_thread(lambda: event_loop.call_soon_threadsafe(done.set))
            await done.wait()
        """,
    ),
    "event_loop_of_a_helper_left_alone": (
        """\
        def schedule(event_loop):
            event_loop.call_soon(print)


        class Helper:
            async def test_like(self, event_loop):
                pass
        """,
        None,
    ),
    "is_async_test_becomes_iscoroutinefunction": (
        """\
        import pytest
        import pytest_asyncio
        from pytest_asyncio import is_async_test


        def pytest_collection_modifyitems(items, it):
            marker = pytest.mark.asyncio(loop_scope="session")
            for item in items:
                if is_async_test(item) and pytest_asyncio.is_async_test(it):
                    item.add_marker(marker)
        """,
        """\
        import pytest
        import inspect


        def pytest_collection_modifyitems(items, it):
            marker = pytest.mark.asyncio(loop_scope="session")
            for item in items:
                if inspect.iscoroutinefunction(item.obj) and inspect.iscoroutinefunction(it.obj):
                    item.add_marker(marker)
        """,
    ),
    "pytest_plugins_entry_dropped": (
        """\
        pytest_plugins = ["pytest_asyncio", "pytester"]
        """,
        """\
        pytest_plugins = ["pytester"]
        """,
    ),
    "pytest_plugins_of_only_pytest_asyncio_dropped": (
        """\
        import os

        pytest_plugins = "pytest_asyncio"
        """,
        """\
        import os
        """,
    ),
}


@pytest.mark.parametrize(("source", "expected"), REWRITES.values(), ids=REWRITES)
def test_each_rewrite_gives_its_output_and_a_second_pass_changes_nothing(
    source: str, expected: str | None
) -> None:
    """The pair's output (None: unchanged), no case for a person, and idempotence."""
    want = textwrap.dedent(expected if expected is not None else source)
    text, findings = _migrate(source)
    assert text == want
    assert findings == []
    assert _migrate(text) == (want, [])


def test_keep_markers_leaves_the_markers_and_rewrites_the_rest() -> None:
    """`--keep-markers`: `@pytest.mark.asyncio` and `pytestmark` stay, the fixture changes."""
    source = """\
        import pytest
        import pytest_asyncio

        pytestmark = pytest.mark.asyncio


        @pytest_asyncio.fixture
        async def client():
            return 1


        @pytest.mark.asyncio
        async def test_client(client):
            assert client
        """
    text, _ = _migrate(source, keep_markers=True)
    assert text == textwrap.dedent(source).replace(
        "import pytest\nimport pytest_asyncio\n", "import pytest\n"
    ).replace("@pytest_asyncio.fixture", "@pytest.fixture")


def test_a_module_with_nothing_to_migrate_is_not_parsed() -> None:
    """No `asyncio` and no `event_loop` in the text: returned as it is, even if invalid."""
    outcome = migrate_python(b"def broken(:\n")
    assert outcome.text == b"def broken(:\n"
    assert outcome.findings == ()


def test_a_module_that_does_not_parse_is_reported_with_its_line() -> None:
    """The parser's line and reason, without libcst's prefix."""
    with pytest.raises(UnparsableError) as info:
        migrate_python(b"import asyncio\n\ndef broken(:\n    pass\n")
    assert info.value.line in {3, 4}
    assert not info.value.reason.startswith("parser error")


MANUAL = {
    "submodule_import": (
        "import pytest_asyncio.plugin\n",
        [(1, other_use("pytest_asyncio.plugin"))],
    ),
    "from_submodule_import": (
        "from pytest_asyncio.plugin import PytestAsyncioFunction\n",
        [(1, other_use("pytest_asyncio.plugin"))],
    ),
    "star_import": (
        "from pytest_asyncio import *\n",
        [(1, other_use("pytest_asyncio.*"))],
    ),
    "other_attribute": (
        "import pytest_asyncio\n\nprint(pytest_asyncio.__version__)\n",
        [(3, other_use("pytest_asyncio.__version__"))],
    ),
    "is_async_test_as_a_value": (
        "from pytest_asyncio import is_async_test\n\nasync_items = filter(is_async_test, [])\n",
        [(3, other_use("pytest_asyncio.is_async_test"))],
    ),
    "plugin_named_in_a_string": (
        'import pytest\n\npytest.importorskip("pytest_asyncio")\n',
        [(3, other_use("pytest_asyncio"))],
    ),
    "sync_test_requests_event_loop": (
        (
            "import asyncio\n\ndef test_sync(event_loop):\n"
            "    event_loop.run_until_complete(asyncio.sleep(0))\n"
        ),
        [(3, sync_event_loop("test_sync"))],
    ),
    "sync_fixture_requests_event_loop": (
        "import pytest\n\n@pytest.fixture\ndef ready(event_loop):\n    return event_loop\n",
        [(4, sync_event_loop("ready"))],
    ),
    "event_loop_fixture": (
        (
            "import asyncio\nimport pytest\n\n@pytest.fixture(scope='module')\ndef event_loop():\n"
            "    loop = asyncio.get_event_loop()\n    yield loop\n    loop.close()\n"
        ),
        [(5, loop_fixture("event_loop"))],
    ),
    "event_loop_fixture_by_name": (
        (
            "import asyncio\nimport pytest\n\n@pytest.fixture(name='event_loop')\n"
            "def make_loop():\n    yield asyncio.new_event_loop()\n"
        ),
        [(5, loop_fixture("event_loop"))],
    ),
    "event_loop_policy_fixture": (
        (
            "import asyncio\nimport pytest\n\n@pytest.fixture(scope='session')\n"
            "def event_loop_policy():\n    return asyncio.DefaultEventLoopPolicy()\n"
        ),
        [(5, loop_fixture("event_loop_policy"))],
    ),
    "get_event_loop_in_a_module_fixture": (
        (
            "import asyncio\nimport pytest\n\n@pytest.fixture(scope='module')\ndef server():\n"
            "    return asyncio.get_event_loop().run_until_complete(asyncio.sleep(0, 1))\n"
        ),
        [(6, wide_get_event_loop("server", "module"))],
    ),
    "event_loop_requested_by_name": (
        (
            "import asyncio\nimport pytest\n\n@pytest.mark.usefixtures('event_loop')\n"
            "def test_a(request):\n    request.getfixturevalue('event_loop')\n"
        ),
        [(4, event_loop_by_name()), (6, event_loop_by_name())],
    ),
}


@pytest.mark.parametrize(("source", "expected"), MANUAL.values(), ids=MANUAL)
def test_each_manual_case_is_reported_at_its_line_and_left_as_it_is(
    source: str, expected: list[tuple[int, str]]
) -> None:
    """What needs a person is a finding with its line and what to do, and is not rewritten."""
    text, findings = _migrate(source)
    assert [(finding.line, finding.message) for finding in findings] == expected
    assert text == source


def test_get_event_loop_in_a_function_scoped_fixture_is_not_a_manual_case() -> None:
    """Only a fixture wider than a function keeps a loop across tests."""
    source = (
        "import asyncio\nimport pytest\n\n@pytest.fixture\ndef loop():\n"
        "    return asyncio.get_event_loop()\n"
    )
    assert _migrate(source) == (source, [])


def test_an_import_still_used_by_a_manual_case_stays_and_the_rest_is_rewritten() -> None:
    """The fixture is rewritten; `pytest_asyncio` is kept for the use left to a person."""
    text, findings = _migrate(
        """\
        import pytest_asyncio


        @pytest_asyncio.fixture
        async def client():
            return pytest_asyncio.__version__
        """
    )
    assert text == textwrap.dedent(
        """\
        import pytest_asyncio
        import pytest


        @pytest.fixture
        async def client():
            return pytest_asyncio.__version__
        """
    )
    assert findings == [Finding(6, other_use("pytest_asyncio.__version__"))]
