"""The xdist controller builds the template while its workers start: `oneloop_db_prebuild`.

Under pytest-xdist the controller has nothing to do while its workers
start (each imports pytest, the plugins and the project's conftest.py, and
collects), which takes seconds. With `oneloop_db_prebuild = true` it builds
the PostgreSQL template database in that time, in a thread with an event
loop of its own (`_templates.shared_template`), and copies it into each
worker's database (`gw0` to `gw<n-1>` of `-n <n>`), marked for this
session with a mark the controller hands each worker as xdist sets it up
(`pytest_configure_node`). A worker that finds its database so marked when
it sets up `db_engine` takes it as it is: it neither builds nor copies.

The controller knows the configuration, not the fixtures: it builds for
the URL of `--db-url`, ONELOOP_DB_URL or `oneloop_db_url`, the metadata of
`oneloop_db_metadata`, and the schema and check options. Workers whose
`db_url` or `db_metadata` fixture is overridden in a conftest.py find
another fingerprint and build their own template, as without the option;
the controller's template and copies are dropped at the end. Nothing that
goes wrong in the controller stops the session: a template it cannot build
is left to the workers, which meet the same failure and report it on their
tests, and the terminal summary says why it was not built in advance. The
session ends once the build and the copies have: a session that ends
sooner waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from typing import Any

import pytest

from pytest_oneloop.sqlalchemy import _config, _engine


def wanted(config: pytest.Config) -> bool:
    """Whether this process is an xdist controller that starts workers, to run tests."""
    return (
        getattr(config, "workerinput", None) is None
        and config.getoption("dist", "no") not in {"no", None}
        and not config.getoption("collectonly", default=False)
    )


class Prebuild:
    """The plugin the controller registers: the build's thread, the share, the summary line."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None
        self._started = threading.Event()  # the thread's loop runs, or the thread is done
        self._thread = threading.Thread(target=self._run, name="oneloop-db-prebuild", daemon=True)
        self._url = _config.configured_url(config)
        # What the copies made for this session's workers are marked with.
        self._mark = uuid.uuid4().hex
        count = config.getoption("numprocesses", None)
        self._workers = [f"gw{index}" for index in range(count)] if isinstance(count, int) else []
        #: Why no template was built in advance, or None.
        self.problem: str | None = None
        self._thread.start()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:  # xdist's WorkerController
        """Hand each worker the mark of the database copied for it."""
        node.workerinput[_engine.PREBUILT_KEY] = self._mark

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        """Wait for the build, then give the share up: the last one out drops the template."""
        self._started.wait()
        if self._loop is not None and self._release is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the thread is done
                self._loop.call_soon_threadsafe(self._release.set)
        self._thread.join()

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Say why the template was not built in advance, when it was not."""
        if self.problem is not None:
            terminalreporter.write_line(
                f"oneloop: {_config.INI_PREBUILD}: the template database was not built in "
                f"advance: {self.problem}"
            )

    def _run(self) -> None:
        try:
            asyncio.run(self._build_and_share())
        except BaseException as exc:  # noqa: BLE001 - the workers meet it again and report it
            problem = _describe(exc)
            self.problem = problem if self._url is None else _config.scrub(problem, self._url)
        finally:
            self._started.set()

    async def _build_and_share(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._release = asyncio.Event()
        self._started.set()
        config = self._config
        if self._url is None:
            self.problem = (
                f"no database URL is configured (--db-url, {_config.ENV_URL} or "
                f"{_config.INI_URL}), so the controller cannot know the workers' database"
            )
            return
        url = _config.parse_url(self._url)
        if url.get_backend_name() != "postgresql" or not url.database:
            self.problem = (
                "templates are made on PostgreSQL only, and the database is "
                f"{_config.mask_url(url)!r}"
            )
            return
        if not config.getini(_config.INI_TEMPLATES):
            self.problem = f"{_config.INI_TEMPLATES} is false, so there is no template to build"
            return
        from pytest_oneloop.sqlalchemy import _templates

        fingerprint_parts, build = _engine.schema_recipe(
            _config.load_metadata(config),
            _config.alembic_ini(config),
            check=bool(config.getini(_config.INI_CHECK)),
        )
        async with _templates.shared_template(
            url,
            fingerprint_parts,
            build,
            reuse=_config.reuse_db(config),
            workers=self._workers,
            mark=self._mark,
        ):
            await self._release.wait()


def _describe(exc: BaseException) -> str:
    """One line for the summary: a failure's own message, else the exception's type and text."""
    if isinstance(exc, pytest.fail.Exception):
        return str(exc.msg).splitlines()[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
