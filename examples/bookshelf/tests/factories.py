"""factory_boy factories for the models: plain SQLAlchemyModelFactory, no session set.

The `factory` fixture (and the fixtures `register()` makes) persist what they
build into the test's `db_session`, sub-factories and related factories
included, so `Meta.sqlalchemy_session` stays unset.
"""

# factory_boy ships no type hints.
# mypy: disable-error-code="attr-defined, no-untyped-call"

import factory
from bookshelf.models import Author, Book, Review
from factory.alchemy import SQLAlchemyModelFactory


class AuthorFactory(SQLAlchemyModelFactory):
    """An author with a unique name."""

    class Meta:
        """Makes `Author` rows."""

        model = Author

    name = factory.Sequence(lambda n: f"Author {n}")


class BookFactory(SQLAlchemyModelFactory):
    """A book, by a new author unless one is given (SubFactory)."""

    class Meta:
        """Makes `Book` rows."""

        model = Book

    title = factory.Sequence(lambda n: f"Book {n}")
    year = 2001
    author = factory.SubFactory(AuthorFactory)


class ReviewFactory(SQLAlchemyModelFactory):
    """A four-star review, of a new book unless one is given (SubFactory of a SubFactory)."""

    class Meta:
        """Makes `Review` rows."""

        model = Review

    rating = 4
    body = "A good read."
    book = factory.SubFactory(BookFactory)


class ReviewedBookFactory(BookFactory):
    """A book with one review, made once the book exists (RelatedFactory)."""

    review = factory.RelatedFactory(ReviewFactory, factory_related_name="book")


class ProlificAuthorFactory(AuthorFactory):
    """An author with three books (RelatedFactoryList)."""

    books = factory.RelatedFactoryList(
        BookFactory,
        factory_related_name="author",
        size=3,
        year=factory.Sequence(lambda n: 1990 + n),
    )
