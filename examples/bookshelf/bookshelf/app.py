"""The HTTP API: FastAPI routes over the service layer.

`create_app()` is the application factory (`uvicorn --factory
bookshelf.app:create_app`). Each request gets its own `AsyncSession` from the
`get_session` dependency; the tests replace that dependency so requests
write inside the test's rolled-back transaction.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bookshelf import services
from bookshelf.context import RequestIdMiddleware
from bookshelf.models import Base
from bookshelf.schemas import (
    AuthorDetail,
    AuthorIn,
    AuthorOut,
    BookIn,
    BookOut,
    RatedBookOut,
    ReviewIn,
    ReviewOut,
)

DEFAULT_URL = "sqlite+aiosqlite:///bookshelf.db"


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, from the application's sessionmaker."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]
router = APIRouter()


def _rated_out(rated: services.RatedBook) -> RatedBookOut:
    book = BookOut.model_validate(rated.book)
    return RatedBookOut(**book.model_dump(), rating=rated.rating, reviews=rated.reviews)


@router.post("/authors", status_code=201)
async def create_author(data: AuthorIn, session: Session) -> AuthorOut:
    """Add an author; 409 if the name is taken."""
    return AuthorOut.model_validate(await services.create_author(session, data.name))


@router.get("/authors/{author_id}")
async def get_author(author_id: int, session: Session) -> AuthorDetail:
    """An author with their books."""
    return AuthorDetail.model_validate(await services.get_author(session, author_id))


@router.post("/authors/{author_id}/books", status_code=201)
async def add_book(author_id: int, data: BookIn, session: Session) -> BookOut:
    """Add a book to an author."""
    book = await services.add_book(session, author_id, data.title, data.year)
    return BookOut.model_validate(book)


@router.get("/books/top")
async def top_rated(
    session: Session, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[RatedBookOut]:
    """The best-rated books, best first."""
    return [_rated_out(rated) for rated in await services.top_rated(session, limit)]


@router.get("/books/search")
async def search_books(session: Session, q: Annotated[str, Query(min_length=1)]) -> list[BookOut]:
    """Books whose title matches `q`."""
    return [BookOut.model_validate(book) for book in await services.search_books(session, q)]


@router.get("/books/{book_id}")
async def get_book(book_id: int, session: Session) -> RatedBookOut:
    """A book with its author and rating."""
    return _rated_out(await services.rated_book(session, book_id))


@router.post("/books/{book_id}/reviews", status_code=201)
async def add_review(book_id: int, data: ReviewIn, session: Session) -> ReviewOut:
    """Review a book."""
    review = await services.add_review(session, book_id, data.rating, data.body)
    return ReviewOut.model_validate(review)


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


def create_app(engine: AsyncEngine | None = None) -> FastAPI:
    """The application, on `engine` or on `BOOKSHELF_DATABASE_URL`.

    Given an engine (the tests give theirs), the application uses it as it
    is. Otherwise it makes one at start-up, creates the tables that are
    missing (a real service would run its migrations instead) and disposes
    of it at shutdown.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = engine
        if db is None:
            db = create_async_engine(os.environ.get("BOOKSHELF_DATABASE_URL", DEFAULT_URL))
            async with db.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
        app.state.sessions = async_sessionmaker(db, expire_on_commit=False)
        try:
            yield
        finally:
            if engine is None:
                await db.dispose()

    app = FastAPI(title="Bookshelf", lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    app.add_exception_handler(services.NotFoundError, _not_found)
    app.add_exception_handler(services.ConflictError, _conflict)
    app.include_router(router)
    return app
