from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import sqlalchemy_support as support

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(params=support.BACKENDS[:2])
def project(
    request: pytest.FixtureRequest, pytester: pytest.Pytester, tmp_path: Path
) -> Iterator[str]:
    """A pytester project with the test schema on a fresh SQLite or PostgreSQL database."""
    with support.database(request.param, tmp_path) as url:
        support.make_project(pytester, url)
        yield url


@pytest.mark.usefixtures("project")
def test_factory_persists_an_object_with_its_primary_key_and_defaults(
    pytester: pytest.Pytester,
) -> None:
    """One call builds, adds and flushes: the id, Python and server defaults are all set."""
    support.run_inner(
        pytester,
        """
        from factories import UserFactory
        from helpers import count
        from models import User

        async def test_one(factory, db_session):
            user = await factory(UserFactory, name="ann")
            assert isinstance(user, User)
            assert isinstance(user.id, int)
            assert (user.name, user.email, user.active, user.role) == (
                "ann", "ann@example.com", True, "member"
            )
            assert user in db_session
            assert await count(db_session, User) == 1
        """,
    )


@pytest.mark.usefixtures("project")
def test_factory_batch_makes_n_objects_with_one_flush(pytester: pytest.Pytester) -> None:
    """batch(F, 10, **kw) returns 10 persisted objects sharing the overrides, in one flush."""
    support.run_inner(
        pytester,
        """
        from sqlalchemy import event

        from factories import UserFactory
        from helpers import count
        from models import User

        async def test_batch(factory, db_session):
            flushes = []
            event.listen(db_session.sync_session, "after_flush", lambda *args: flushes.append(1))
            users = await factory.batch(UserFactory, 10, admin=True)
            assert len(flushes) == 1
            assert len({user.id for user in users}) == 10
            assert {user.role for user in users} == {"admin"}
            assert await count(db_session, User) == 10
        """,
    )


@pytest.mark.usefixtures("project")
def test_a_subfactory_object_is_persisted_with_its_parent(pytester: pytest.Pytester) -> None:
    """SubFactory objects are added and flushed, so the parent's foreign key is set."""
    support.run_inner(
        pytester,
        """
        from factories import BlogPostFactory, ProfileFactory
        from helpers import count
        from models import User

        async def test_subfactory(factory, db_session):
            post = await factory(BlogPostFactory)
            assert post.author_id == post.author.id
            profile = await factory(ProfileFactory)  # user_id = SelfAttribute("user.id")
            assert isinstance(profile.user_id, int)
            assert await count(db_session, User) == 2
        """,
    )


@pytest.mark.usefixtures("project")
def test_a_related_factory_gets_its_foreign_key_from_the_parents_id(
    pytester: pytest.Pytester,
) -> None:
    """RelatedFactory objects see the flushed parent: by its id, or through a relationship."""
    support.run_inner(
        pytester,
        """
        from sqlalchemy import select

        from factories import UserWithPostFactory, UserWithProfileFactory
        from models import BlogPost, Profile

        async def test_related(factory, db_session):
            user = await factory(UserWithProfileFactory)
            profiles = (await db_session.scalars(select(Profile))).all()
            assert [profile.user_id for profile in profiles] == [user.id]
            author = await factory(UserWithPostFactory)
            posts = (await db_session.scalars(select(BlogPost))).all()
            assert [post.author_id for post in posts] == [author.id]
        """,
    )


@pytest.mark.usefixtures("project")
def test_post_generation_hooks_see_create_true_and_their_objects_are_persisted(
    pytester: pytest.Pytester,
) -> None:
    """A post_generation hook runs as under factory_boy's create, and what it adds is flushed."""
    support.run_inner(
        pytester,
        """
        from sqlalchemy import select

        from factories import CREATE_FLAGS, BlogPostFactory
        from models import Tag

        async def test_hook(factory, db_session):
            post = await factory(BlogPostFactory, tags=["a", "b"])
            assert CREATE_FLAGS == [True]
            tags = (await db_session.scalars(select(Tag).order_by(Tag.name))).all()
            assert [(tag.name, tag.post_id) for tag in tags] == [("a", post.id), ("b", post.id)]
        """,
    )


@pytest.mark.usefixtures("project")
def test_lazy_attribute_sequence_and_trait_work(pytester: pytest.Pytester) -> None:
    """Sequence numbers, LazyAttribute values and Trait flags reach the saved rows."""
    support.run_inner(
        pytester,
        """
        from factories import UserFactory

        async def test_declarations(factory):
            first, second = await factory.batch(UserFactory, 2)
            assert first.name != second.name
            assert first.email == f"{first.name}@example.com"
            admin = await factory(UserFactory, admin=True)
            assert (first.role, admin.role) == ("member", "admin")
        """,
    )


@pytest.mark.usefixtures("project")
def test_no_meta_sqlalchemy_session_is_needed_or_changed(pytester: pytest.Pytester) -> None:
    """Factories with no session, or with a session of their own, keep it and leave it unused."""
    support.run_inner(
        pytester,
        """
        from sqlalchemy.orm import Session

        from factories import UserFactory

        OWN_SESSION = Session()

        class OwnSessionUserFactory(UserFactory):
            class Meta:
                sqlalchemy_session = OWN_SESSION
                sqlalchemy_session_persistence = "commit"

        async def test_meta(factory, db_session):
            user = await factory(UserFactory)
            other = await factory(OwnSessionUserFactory)
            assert user in db_session and other in db_session
            assert UserFactory._meta.sqlalchemy_session is None
            assert UserFactory._meta.sqlalchemy_session_persistence is None
            assert OwnSessionUserFactory._meta.sqlalchemy_session is OWN_SESSION
            assert other not in OWN_SESSION and not OWN_SESSION.new
        """,
    )


@pytest.mark.usefixtures("project")
def test_a_plain_factory_boy_factory_is_persisted_too(pytester: pytest.Pytester) -> None:
    """factory.Factory with a mapped model is persisted; one building a dict returns it as is."""
    support.run_inner(
        pytester,
        """
        import factory as factory_boy

        from models import User

        class PlainUserFactory(factory_boy.Factory):
            class Meta:
                model = User

            name = "plain"
            email = "plain@example.com"

        class SettingsFactory(factory_boy.DictFactory):
            theme = "dark"

        async def test_plain(factory, db_session):
            user = await factory(PlainUserFactory)
            assert isinstance(user.id, int)
            assert await factory(SettingsFactory) == {"theme": "dark"}
        """,
    )


@pytest.mark.usefixtures("project")
def test_what_factory_creates_is_rolled_back_with_the_test(pytester: pytest.Pytester) -> None:
    """Objects made through `factory` and committed are gone in the next test."""
    support.run_inner(
        pytester,
        """
        from factories import BlogPostFactory
        from helpers import count
        from models import BlogPost, User

        async def test_creates(factory, db_session):
            await factory.batch(BlogPostFactory, 3)
            await db_session.commit()

        async def test_sees_nothing(db_session):
            assert await count(db_session, User) == await count(db_session, BlogPost) == 0
        """,
        passed=2,
    )


@pytest.mark.usefixtures("project")
def test_a_get_or_create_factory_returns_the_existing_row(pytester: pytest.Pytester) -> None:
    """sqlalchemy_get_or_create looks the row up in db_session before making a new one."""
    support.run_inner(
        pytester,
        """
        from factories import UserFactory
        from helpers import count
        from models import User

        class NamedUserFactory(UserFactory):
            class Meta:
                sqlalchemy_get_or_create = ("name",)

        async def test_get_or_create(factory, db_session):
            first = await factory(NamedUserFactory, name="ann")
            again = await factory(NamedUserFactory, name="ann")
            other = await factory(NamedUserFactory, name="bob")
            assert again is first and other is not first
            assert await count(db_session, User) == 2
        """,
    )


def test_factory_refuses_what_is_not_a_usable_factory_boy_factory(
    pytester: pytest.Pytester,
) -> None:
    """A model class or an abstract factory gets a TypeError saying what is expected."""
    support.make_project(pytester, None)
    pytester.makepyfile(
        """
        import pytest
        from factory.alchemy import SQLAlchemyModelFactory

        from models import User

        async def test_model_class(factory):
            with pytest.raises(TypeError) as raised:
                await factory(User)
            assert str(raised.value) == (
                "oneloop: factory() takes a factory_boy Factory class, not <class 'models.User'>"
            )

        async def test_abstract_factory(factory):
            with pytest.raises(TypeError) as raised:
                await factory(SQLAlchemyModelFactory)
            assert str(raised.value) == (
                "oneloop: cannot create objects with the abstract factory "
                "SQLAlchemyModelFactory: set its Meta.model"
            )
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_register_creates_an_instance_and_a_factory_fixture_named_after_the_model(
    pytester: pytest.Pytester,
) -> None:
    """register(BlogPostFactory) gives `blog_post` and `blog_post_factory`; @register works too."""
    support.make_project(pytester, None)
    pytester.makeconftest(
        """
        import factory

        from factories import BlogPostFactory, UserFactory
        from models import Tag
        from pytest_oneloop.sqlalchemy import register

        register(UserFactory)
        register(BlogPostFactory)

        @register
        class TagFactory(factory.alchemy.SQLAlchemyModelFactory):
            class Meta:
                model = Tag

            class Params:
                post = factory.SubFactory(BlogPostFactory)

            name = "t"
            post_id = factory.SelfAttribute("post.id")
        """
    )
    support.run_inner(
        pytester,
        """
        from helpers import count
        from models import BlogPost, User

        async def test_fixtures(blog_post, blog_post_factory, user_factory, tag, db_session):
            assert isinstance(blog_post.id, int)
            titled = await blog_post_factory(title="hello")
            assert titled.title == "hello"
            assert len(await user_factory.batch(2)) == 2
            assert tag.post_id is not None
            assert await count(db_session, BlogPost) == 3
            assert await count(db_session, User) == 5
        """,
    )
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines(
        [
            "*fixtures defined from conftest*",
            "blog_post_factory -- *",
            "    BlogPostFactory bound to db_session: `await blog_post_factory(**kw)`.",
            "blog_post -- *",
            "    One object made by BlogPostFactory, flushed into db_session.",
        ]
    )


def test_register_with_a_name_overrides_the_fixture_names(pytester: pytest.Pytester) -> None:
    """register(UserFactory, name="author") gives `author` and `author_factory` instead."""
    support.make_project(pytester, None)
    pytester.makeconftest(
        """
        from factories import UserFactory
        from pytest_oneloop.sqlalchemy import register

        register(UserFactory, name="author")
        """
    )
    support.run_inner(
        pytester,
        """
        async def test_fixtures(author, author_factory, request):
            admin = await author_factory(admin=True)
            assert (author.role, admin.role) == ("member", "admin")
            assert "user" not in request.fixturenames
        """,
    )


def test_register_without_a_model_asks_for_a_name(pytester: pytest.Pytester) -> None:
    """A factory with no Meta.model cannot name its fixtures, and register() says so."""
    support.make_project(pytester, None)
    pytester.makeconftest(
        """
        from factory.alchemy import SQLAlchemyModelFactory
        from pytest_oneloop.sqlalchemy import register

        register(SQLAlchemyModelFactory)
        """
    )
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(
        [
            (
                "E   TypeError: oneloop: register('SQLAlchemyModelFactory') needs a factory with a "
                "Meta.model, or a fixture name: register(F, name='user')"
            )
        ]
    )
