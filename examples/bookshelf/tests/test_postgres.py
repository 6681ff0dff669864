"""What only a real PostgreSQL shows: full-text search and its timestamps.

These tests are in the `integration` group: a plain `pytest` skips them.
Run them with `--integration --db-url postgresql+asyncpg://USER:PASSWORD@HOST/DATABASE`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import httpx
    from bookshelf.models import Review

    from pytest_oneloop.sqlalchemy import BoundFactory

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("postgres")]


async def test_search_matches_other_forms_of_a_word(
    api: httpx.AsyncClient, book_factory: BoundFactory
) -> None:
    """PostgreSQL's English stemming finds "The Secret Garden" for "gardens"."""
    await book_factory(title="The Secret Garden")
    await book_factory(title="Gardens of the Moon")
    await book_factory(title="Dune")

    response = await api.get("/books/search", params={"q": "gardens"})

    assert sorted(book["title"] for book in response.json()) == [
        "Gardens of the Moon",
        "The Secret Garden",
    ]


async def test_reviews_are_stamped_with_an_aware_time(review: Review) -> None:
    """The server default now() of a timestamptz column comes back with its time zone."""
    assert review.created_at.tzinfo is not None


async def test_a_reader_reviews_a_new_book_over_http(api: httpx.AsyncClient) -> None:
    """The whole flow, from the author to the top list, on PostgreSQL."""
    author = (await api.post("/authors", json={"name": "N. K. Jemisin"})).json()
    book = (
        await api.post(
            f"/authors/{author['id']}/books", json={"title": "The Fifth Season", "year": 2015}
        )
    ).json()
    for rating in (5, 4, 4):
        review = await api.post(f"/books/{book['id']}/reviews", json={"rating": rating})
        assert review.status_code == 201, review.text

    top = (await api.get("/books/top")).json()

    assert [(entry["title"], entry["rating"], entry["reviews"]) for entry in top] == [
        ("The Fifth Season", 4.33, 3)
    ]
