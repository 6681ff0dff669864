"""The `factory` fixture, and `register()` for per-model fixtures.

factory_boy's create strategy is run with a builder of our own, so nothing
of the user's factories changes and no `Meta.sqlalchemy_session` is needed.
Our builder instantiates each object the way the build strategy does
(`Factory._build`), adds it to the test's session, and flushes when a key
may be read before the end: a nested object (its parent's declarations may
read its id) and an object with post-generation declarations (a
`RelatedFactory` may take its id). Everything else waits for the single
flush at the end of the call, so `batch()` of a flat factory is one flush.
Post-generation hooks see `create=True`, as with factory_boy's own create.

The whole call runs through `AsyncSession.run_sync`, where the synchronous
session may do I/O on the test's loop.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_oneloop.sqlalchemy._config import require

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

F = TypeVar("F")

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


class PersistingFactory:
    """The `factory` fixture: `await factory(UserFactory, name="ann")`."""

    __slots__ = ("session",)

    def __init__(self, session: AsyncSession) -> None:
        """Persist into `session`; factory_boy must be importable."""
        require("factory")
        self.session = session

    async def __call__(self, factory_class: Any, /, **overrides: Any) -> Any:
        """Build one object with `factory_class`, add its graph to the session, flush."""
        objects = await self.session.run_sync(_create, factory_class, 1, overrides)
        return objects[0]

    async def batch(self, factory_class: Any, size: int, /, **overrides: Any) -> list[Any]:
        """Build `size` objects with the same overrides; one flush for flat factories."""
        objects: list[Any] = await self.session.run_sync(_create, factory_class, size, overrides)
        return objects

    def bind(self, factory_class: Any) -> BoundFactory:
        """`factory` with `factory_class` filled in (what `register()` fixtures return)."""
        return BoundFactory(self, factory_class)

    def __repr__(self) -> str:
        """Name the session, not the database."""
        return f"<PersistingFactory session={self.session!r}>"


class BoundFactory:
    """One factory bound to the test's session: `await user_factory(name="ann")`."""

    __slots__ = ("factory", "factory_class")

    def __init__(self, factory: PersistingFactory, factory_class: Any) -> None:
        """Persist objects of `factory_class` through `factory`."""
        self.factory = factory
        self.factory_class = factory_class

    async def __call__(self, **overrides: Any) -> Any:
        """One persisted object."""
        return await self.factory(self.factory_class, **overrides)

    async def batch(self, size: int, /, **overrides: Any) -> list[Any]:
        """`size` persisted objects."""
        return await self.factory.batch(self.factory_class, size, **overrides)

    def __repr__(self) -> str:
        """Name the factory class."""
        return f"<BoundFactory {getattr(self.factory_class, '__name__', self.factory_class)}>"


def _create(
    session: Session, factory_class: Any, size: int, overrides: dict[str, Any]
) -> list[Any]:
    from factory import enums

    options = _options_of(factory_class)
    builder = _persisting_builder()
    objects = [
        builder(options, dict(overrides), enums.CREATE_STRATEGY, session).build()
        for _ in range(size)
    ]
    session.flush()
    return objects


def _options_of(factory_class: Any) -> Any:
    """The factory's `_meta`, after checking it can make objects."""
    from factory.base import BaseFactory

    if not (isinstance(factory_class, type) and issubclass(factory_class, BaseFactory)):
        msg = f"oneloop: factory() takes a factory_boy Factory class, not {factory_class!r}"
        raise TypeError(msg)
    options = factory_class._meta  # noqa: SLF001 - factory_boy's documented options object
    if options.abstract:
        msg = (
            f"oneloop: cannot create objects with the abstract factory {factory_class.__name__}: "
            "set its Meta.model"
        )
        raise TypeError(msg)
    return options


@functools.cache
def _persisting_builder() -> type[Any]:
    """factory_boy's StepBuilder, recursing into sub-factories with our options."""
    from factory.builder import StepBuilder

    class PersistingStepBuilder(StepBuilder):
        def __init__(
            self, options: Any, extras: dict[str, Any], strategy: str, session: Session
        ) -> None:
            options = _PersistingOptions(options, session)
            # factory_boy's StepBuilder has no annotations.
            super().__init__(options, extras, strategy)  # type: ignore[no-untyped-call]
            self.session = session

        def recurse(self, options: Any, extras: dict[str, Any]) -> PersistingStepBuilder:
            return PersistingStepBuilder(options, extras, self.strategy, self.session)

    return PersistingStepBuilder


class _PersistingOptions:
    """A factory's options whose `instantiate` builds, adds and flushes if needed."""

    __slots__ = ("_options", "_session")

    def __init__(self, options: Any, session: Session) -> None:
        self._options = options
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._options, name)

    def __repr__(self) -> str:
        return repr(self._options)

    def instantiate(self, step: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from sqlalchemy import inspect as inspect_object
        from sqlalchemy import select

        options, session = self._options, self._session
        model = options.get_model_class()
        lookup = getattr(options, "sqlalchemy_get_or_create", ())
        if lookup:
            missing = [field for field in lookup if field not in kwargs]
            if missing:
                msg = f"oneloop: sqlalchemy_get_or_create fields {missing} have no value"
                raise TypeError(msg)
            keys = {field: kwargs[field] for field in lookup}
            found = session.scalars(select(model).filter_by(**keys)).one_or_none()
            if found is not None:
                return found
        instance = options.factory._build(model, *args, **kwargs)  # noqa: SLF001 - the build hook
        if inspect_object(instance, raiseerr=False) is not None:
            session.add(instance)
            if step.parent_step is not None or any(True for _ in options.post_declarations):
                session.flush()
        return instance


def model_fixture_name(factory_class: Any) -> str:
    """`BlogPostFactory` (model `BlogPost`) -> `blog_post`."""
    model = getattr(getattr(factory_class, "_meta", None), "model", None)
    name = model if isinstance(model, str) else getattr(model, "__name__", None)
    if not name:
        msg = (
            f"oneloop: register({getattr(factory_class, '__name__', factory_class)!r}) needs a "
            "factory with a Meta.model, or a fixture name: register(F, name='user')"
        )
        raise TypeError(msg)
    return _CAMEL_BOUNDARY.sub("_", name.rpartition(".")[2]).lower()


def register(factory_class: F, name: str | None = None) -> F:
    """Create the fixtures `<model>` and `<model>_factory` in the calling module.

    Call it in a conftest.py (or use it as a class decorator): with
    `BlogPostFactory` it creates `blog_post`, one persisted `BlogPost`, and
    `blog_post_factory`, a `BoundFactory` (`await blog_post_factory(title="x")`).
    `name="post"` creates `post` and `post_factory` instead.
    """
    fixture_name = name or model_fixture_name(factory_class)
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    if caller is None:
        msg = "oneloop: register() must be called from a module or class body"
        raise RuntimeError(msg)
    namespace = caller.f_locals
    module = str(namespace.get("__name__", __name__))
    class_name = getattr(factory_class, "__name__", repr(factory_class))
    factory_name = f"{fixture_name}_factory"

    def bound_factory(factory: PersistingFactory) -> BoundFactory:
        return factory.bind(factory_class)

    async def instance(factory: PersistingFactory) -> Any:
        return await factory(factory_class)

    doc = f"{class_name} bound to db_session: `await {factory_name}(**kw)`."
    namespace[factory_name] = _as_fixture(bound_factory, factory_name, module, doc)
    doc = f"One object made by {class_name}, flushed into db_session."
    namespace[fixture_name] = _as_fixture(instance, fixture_name, module, doc)
    return factory_class


def _as_fixture(function: Callable[..., Any], name: str, module: str, doc: str) -> object:
    """`function` as the fixture `name`, listed by `pytest --fixtures` under `module`."""
    function.__name__ = function.__qualname__ = name
    function.__module__ = module
    function.__doc__ = doc
    return pytest.fixture(name=name)(function)
