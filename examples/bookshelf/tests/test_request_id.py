"""The request id: a ContextVar set by a fixture or by the middleware, read by the logs."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from bookshelf import context, services

if TYPE_CHECKING:
    import httpx
    import pytest
    from bookshelf.models import Book
    from sqlalchemy.ext.asyncio import AsyncSession


def logged_ids(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [getattr(record, "request_id", "") for record in caplog.records]


async def test_the_service_logs_the_request_id_a_fixture_set(
    request_id: str, db_session: AsyncSession, book: Book, caplog: pytest.LogCaptureFixture
) -> None:
    """The `request_id` fixture set the ContextVar; the code under test reads it."""
    caplog.set_level(logging.INFO, logger="bookshelf")

    await services.add_review(db_session, book.id, rating=5)

    assert logged_ids(caplog) == [request_id]


def test_without_the_fixture_there_is_no_request_id() -> None:
    """What the fixture set was undone at its teardown: nothing leaks into other tests."""
    assert context.request_id.get() is None


async def test_a_request_logs_and_returns_the_id_it_was_sent(
    api: httpx.AsyncClient, book: Book, caplog: pytest.LogCaptureFixture
) -> None:
    """The middleware sets the id for the request; the test's own value is untouched."""
    caplog.set_level(logging.INFO, logger="bookshelf")

    response = await api.post(
        f"/books/{book.id}/reviews", json={"rating": 4}, headers={"X-Request-ID": "req-42"}
    )

    assert response.headers["X-Request-ID"] == "req-42"
    assert logged_ids(caplog) == ["req-42"]
    assert context.request_id.get() is None


async def test_a_request_without_an_id_gets_a_new_one(api: httpx.AsyncClient) -> None:
    """Each request is given a fresh hexadecimal id."""
    first = await api.get("/books/top")
    second = await api.get("/books/top")

    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)
    assert ids[0] != ids[1]
