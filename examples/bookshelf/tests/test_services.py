"""The service layer on the test database, with objects made by the factories."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from bookshelf import services
from bookshelf.models import Author, Book, Review
from factories import ProlificAuthorFactory, ReviewedBookFactory
from sqlalchemy import func, select

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from pytest_oneloop.sqlalchemy import BoundFactory, PersistingFactory, QueryCounter


async def count(session: AsyncSession, model: type[Author | Book | Review]) -> int:
    return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_a_new_author_is_stored(db_session: AsyncSession) -> None:
    """create_author commits a row that the test's session can read back."""
    author = await services.create_author(db_session, "Ursula K. Le Guin")

    assert author.id is not None
    assert await count(db_session, Author) == 1


async def test_an_authors_name_is_taken_only_once(db_session: AsyncSession, author: Author) -> None:
    """A second author with the same name is refused with a message naming it."""
    with pytest.raises(services.ConflictError, match=f"an author named '{author.name}' exists"):
        await services.create_author(db_session, author.name)


async def test_each_test_starts_with_empty_tables(db_session: AsyncSession) -> None:
    """Whatever the other tests wrote (and committed) was rolled back after them."""
    assert [await count(db_session, model) for model in (Author, Book, Review)] == [0, 0, 0]


async def test_a_book_without_reviews_has_no_rating(db_session: AsyncSession, book: Book) -> None:
    """The `book` fixture (register(BookFactory)) made the book and, by SubFactory, its author."""
    rated = await services.rated_book(db_session, book.id)

    assert (rated.rating, rated.reviews) == (None, 0)
    assert rated.book.author.name.startswith("Author ")


async def test_the_rating_is_the_average_of_the_reviews(
    db_session: AsyncSession, book: Book, review_factory: BoundFactory
) -> None:
    """Reviews made for one book by the bound factory count towards its rating."""
    await review_factory(book=book, rating=5)
    await review_factory(book=book, rating=2)

    rated = await services.rated_book(db_session, book.id)

    assert (rated.rating, rated.reviews) == (3.5, 2)


async def test_a_reviewed_book_comes_with_its_review(
    db_session: AsyncSession, factory: PersistingFactory
) -> None:
    """RelatedFactory makes the review after the book, pointing at it."""
    book = await factory(ReviewedBookFactory, title="Dune")

    rated = await services.rated_book(db_session, book.id)

    assert (rated.book.title, rated.rating, rated.reviews) == ("Dune", 4.0, 1)


async def test_an_authors_books_are_listed_oldest_first(
    db_session: AsyncSession, factory: PersistingFactory
) -> None:
    """RelatedFactoryList made three books by the author; get_author lists them by year."""
    author = await factory(ProlificAuthorFactory)
    db_session.expunge_all()  # read what is in the database, not the factory's objects

    found = await services.get_author(db_session, author.id)

    years = [book.year for book in found.books]
    assert len(years) == 3
    assert years == sorted(years)


async def test_top_rated_lists_the_best_books_first(
    db_session: AsyncSession, book_factory: BoundFactory, review_factory: BoundFactory
) -> None:
    """Books are ordered by average rating; books without reviews are left out."""
    good, poor, _unreviewed = await book_factory.batch(3)
    await review_factory(book=good, rating=5)
    await review_factory(book=poor, rating=1)

    top = await services.top_rated(db_session)

    assert [(rated.book.id, rated.rating) for rated in top] == [(good.id, 5.0), (poor.id, 1.0)]


async def test_the_top_list_takes_two_queries_however_many_books_it_lists(
    db_session: AsyncSession, review_factory: BoundFactory, db_queries: QueryCounter
) -> None:
    """One selectinload query fetches the authors of all the listed books, not one per book."""
    await review_factory.batch(5)  # five books, by five authors
    db_session.expunge_all()  # nothing cached: each author has to come from the database

    async with db_queries.assert_max(2):  # the books with their ratings, then their authors
        top = await services.top_rated(db_session)

    assert len({rated.book.author.name for rated in top}) == 5


async def test_a_review_outside_one_to_five_stars_is_refused(
    db_session: AsyncSession, book: Book
) -> None:
    """The service checks the rating before the database's CHECK constraint would."""
    with pytest.raises(services.InvalidRatingError, match="a rating is 1 to 5 stars, not 6"):
        await services.add_review(db_session, book.id, rating=6)


async def test_a_review_of_a_missing_book_is_refused(db_session: AsyncSession) -> None:
    """The error names the id that was not found."""
    with pytest.raises(services.NotFoundError, match="no book with id 404"):
        await services.add_review(db_session, 404, rating=3)
