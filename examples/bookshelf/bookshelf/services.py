"""What the bookshelf does, with no HTTP in sight: each function takes its session.

Every function that writes commits its own unit of work. Under the tests the
session works inside a SAVEPOINT of the test's transaction, so a commit here
releases the SAVEPOINT and everything is still rolled back after the test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from bookshelf.context import RequestIdFilter
from bookshelf.models import Author, Book, Review

if TYPE_CHECKING:
    from sqlalchemy import Subquery
    from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)
log.addFilter(RequestIdFilter())


class NotFoundError(LookupError):
    """No row with that id."""


class ConflictError(ValueError):
    """The change would break a uniqueness rule."""


class InvalidRatingError(ValueError):
    """A rating outside 1 to 5."""


@dataclass(frozen=True)
class RatedBook:
    """A book with the average of its ratings (None without reviews) and their number."""

    book: Book
    rating: float | None
    reviews: int


async def create_author(session: AsyncSession, name: str) -> Author:
    """Store a new author, refusing a name that is taken."""
    if await session.scalar(select(Author.id).where(Author.name == name)) is not None:
        raise ConflictError(f"an author named {name!r} exists already")
    author = Author(name=name, books=[])
    session.add(author)
    await session.commit()
    log.info("author %s added: %s", author.id, name)
    return author


async def get_author(session: AsyncSession, author_id: int) -> Author:
    """The author with their books, oldest first."""
    author = await session.get(Author, author_id, options=[selectinload(Author.books)])
    if author is None:
        raise NotFoundError(f"no author with id {author_id}")
    return author


async def add_book(session: AsyncSession, author_id: int, title: str, year: int) -> Book:
    """Store a book by an existing author."""
    author = await session.get(Author, author_id)
    if author is None:
        raise NotFoundError(f"no author with id {author_id}")
    book = Book(author_id=author.id, title=title, year=year)
    session.add(book)
    await session.commit()
    book.author = author
    log.info("book %s added: %r by %s", book.id, title, author.name)
    return book


async def add_review(session: AsyncSession, book_id: int, rating: int, body: str = "") -> Review:
    """Store a review of an existing book; the rating is 1 to 5."""
    if not 1 <= rating <= 5:
        raise InvalidRatingError(f"a rating is 1 to 5 stars, not {rating}")
    if await session.scalar(select(Book.id).where(Book.id == book_id)) is None:
        raise NotFoundError(f"no book with id {book_id}")
    review = Review(book_id=book_id, rating=rating, body=body)
    session.add(review)
    await session.commit()
    log.info("review %s of book %s: %s stars", review.id, book_id, rating)
    return review


def _review_stats() -> Subquery:
    """Per book: the average rating and the number of reviews."""
    return (
        select(
            Review.book_id,
            func.avg(Review.rating).label("rating"),
            func.count(Review.id).label("reviews"),
        )
        .group_by(Review.book_id)
        .subquery()
    )


def _as_rated(book: Book, rating: float | None, reviews: int | None) -> RatedBook:
    # PostgreSQL's avg() is a Decimal, SQLite's a float.
    return RatedBook(book, None if rating is None else round(float(rating), 2), reviews or 0)


async def rated_book(session: AsyncSession, book_id: int) -> RatedBook:
    """One book with its author, average rating and number of reviews."""
    stats = _review_stats()
    query = (
        select(Book, stats.c.rating, stats.c.reviews)
        .outerjoin(stats, stats.c.book_id == Book.id)
        .where(Book.id == book_id)
        .options(selectinload(Book.author))
    )
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise NotFoundError(f"no book with id {book_id}")
    return _as_rated(*row)


async def top_rated(
    session: AsyncSession, limit: int = 10, min_reviews: int = 1
) -> list[RatedBook]:
    """The best-rated books with at least `min_reviews` reviews, best first."""
    stats = _review_stats()
    query = (
        select(Book, stats.c.rating, stats.c.reviews)
        .join(stats, stats.c.book_id == Book.id)
        .where(stats.c.reviews >= max(min_reviews, 1))
        .order_by(stats.c.rating.desc(), Book.title)
        .limit(limit)
        .options(selectinload(Book.author))
    )
    return [_as_rated(*row) for row in await session.execute(query)]


async def search_books(session: AsyncSession, text: str) -> list[Book]:
    """Books whose title matches `text`.

    PostgreSQL's full-text search matches word forms ("gardens" finds "The
    Secret Garden") and ranks the results; other databases match a substring.
    """
    connection = await session.connection()
    query = select(Book).options(selectinload(Book.author))
    if connection.dialect.name == "postgresql":
        document = func.to_tsvector("english", Book.title)
        wanted = func.websearch_to_tsquery("english", text)
        query = query.where(document.bool_op("@@")(wanted)).order_by(
            func.ts_rank(document, wanted).desc(), Book.title
        )
    else:
        query = query.where(Book.title.icontains(text, autoescape=True)).order_by(Book.title)
    return list(await session.scalars(query))
