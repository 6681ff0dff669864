"""What the API accepts and returns (validated by pydantic before any SQL runs)."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class AuthorIn(BaseModel):
    """A new author."""

    name: str = Field(min_length=1, max_length=100)


class BookIn(BaseModel):
    """A new book of an author."""

    title: str = Field(min_length=1, max_length=200)
    year: int = Field(ge=1450, le=2100)


class ReviewIn(BaseModel):
    """A new review of a book."""

    rating: int = Field(ge=1, le=5)
    body: str = Field(default="", max_length=2000)


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AuthorOut(_FromRow):
    """An author."""

    id: int
    name: str


class BookSummary(_FromRow):
    """A book, in its author's list."""

    id: int
    title: str
    year: int


class AuthorDetail(AuthorOut):
    """An author with their books, oldest first."""

    books: list[BookSummary]


class BookOut(BookSummary):
    """A book with its author."""

    author: AuthorOut


class RatedBookOut(BookOut):
    """A book with its average rating (null without reviews) and number of reviews."""

    rating: float | None
    reviews: int


class ReviewOut(_FromRow):
    """A review."""

    id: int
    book_id: int
    rating: int
    body: str
    created_at: datetime
