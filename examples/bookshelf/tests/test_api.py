"""The HTTP API, through httpx's ASGI transport, writing inside the test's transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bookshelf.models import Author, Review
from sqlalchemy import select

if TYPE_CHECKING:
    import httpx
    from bookshelf.models import Book
    from sqlalchemy.ext.asyncio import AsyncSession

    from pytest_oneloop.sqlalchemy import BoundFactory


async def test_posting_an_author_returns_it_with_its_id(
    api: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """The request's session committed into the test's transaction: db_session sees the row."""
    response = await api.post("/authors", json={"name": "Octavia E. Butler"})

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "Octavia E. Butler"
    assert await db_session.scalar(select(Author.name).where(Author.id == created["id"])) == (
        "Octavia E. Butler"
    )


async def test_a_taken_author_name_is_a_conflict(api: httpx.AsyncClient, author: Author) -> None:
    """An author made by a factory is visible to the request, which answers 409."""
    response = await api.post("/authors", json={"name": author.name})

    assert response.status_code == 409
    assert response.json() == {"detail": f"an author named '{author.name}' exists already"}


async def test_a_book_added_over_http_is_listed_under_its_author(
    api: httpx.AsyncClient, author: Author
) -> None:
    """Two requests in one test: the second sees what the first committed."""
    added = await api.post(f"/authors/{author.id}/books", json={"title": "Kindred", "year": 1979})
    assert added.status_code == 201, added.text

    response = await api.get(f"/authors/{author.id}")

    assert response.json()["books"] == [
        {"id": added.json()["id"], "title": "Kindred", "year": 1979}
    ]


async def test_a_book_shows_its_author_and_rating(
    api: httpx.AsyncClient, book: Book, review_factory: BoundFactory
) -> None:
    """GET /books/{id} returns the book, its author and the average of its reviews."""
    await review_factory(book=book, rating=5)
    await review_factory(book=book, rating=4)

    response = await api.get(f"/books/{book.id}")

    assert response.json() == {
        "id": book.id,
        "title": book.title,
        "year": book.year,
        "author": {"id": book.author.id, "name": book.author.name},
        "rating": 4.5,
        "reviews": 2,
    }


async def test_a_review_posted_over_http_is_in_the_database(
    api: httpx.AsyncClient, book: Book, db_session: AsyncSession
) -> None:
    """POST /books/{id}/reviews stores the review, stamped with its creation time."""
    response = await api.post(f"/books/{book.id}/reviews", json={"rating": 5, "body": "Loved it."})

    assert response.status_code == 201, response.text
    assert response.json()["created_at"]
    stored = await db_session.scalars(select(Review.body).where(Review.book_id == book.id))
    assert stored.all() == ["Loved it."]


async def test_a_rating_of_six_is_refused_before_any_sql(
    api: httpx.AsyncClient, book: Book
) -> None:
    """Validation answers 422 naming the field."""
    response = await api.post(f"/books/{book.id}/reviews", json={"rating": 6})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "rating"]


async def test_an_unknown_book_is_not_found(api: httpx.AsyncClient) -> None:
    """404 with a message naming the id."""
    response = await api.get("/books/999")

    assert response.status_code == 404
    assert response.json() == {"detail": "no book with id 999"}


async def test_search_finds_books_by_a_word_of_the_title(
    api: httpx.AsyncClient, book_factory: BoundFactory
) -> None:
    """Search matches on every database: a substring here, full-text on PostgreSQL."""
    await book_factory(title="The Secret Garden")
    await book_factory(title="Dune")

    response = await api.get("/books/search", params={"q": "garden"})

    assert [book["title"] for book in response.json()] == ["The Secret Garden"]


async def test_top_rated_lists_books_best_first(
    api: httpx.AsyncClient, book_factory: BoundFactory, review_factory: BoundFactory
) -> None:
    """GET /books/top orders the reviewed books by average rating."""
    ok, best = await book_factory.batch(2)
    await review_factory(book=ok, rating=3)
    await review_factory(book=best, rating=5)

    response = await api.get("/books/top")

    assert [(book["title"], book["rating"]) for book in response.json()] == [
        (best.title, 5.0),
        (ok.title, 3.0),
    ]
