"""Opt-in test groups: skipped by default, one flag away, composable with pytest's filters."""

from __future__ import annotations

import pytest

GROUPS_INI = """
[pytest]
addopts = -p no:cacheprovider
oneloop_groups =
    slow: takes over a second
    e2e: drives a browser
"""

FOUR_TESTS = """
import pytest

def test_unit():
    pass

@pytest.mark.integration
def test_real_server():
    pass

@pytest.mark.slow
def test_slow():
    pass

@pytest.mark.integration
@pytest.mark.slow
def test_real_and_slow():
    pass
"""


@pytest.fixture
def four_tests(pytester: pytest.Pytester) -> pytest.Pytester:
    """One ungrouped test, one integration, one slow, one in both groups."""
    pytester.makeini(GROUPS_INI)
    pytester.makepyfile(test_four=FOUR_TESTS)
    return pytester


def passed_ids(result: pytest.RunResult) -> set[str]:
    """The node ids the `-rA` short summary lists as passed."""
    return {line.split()[1] for line in result.outlines if line.startswith("PASSED ")}


def usage_error(result: pytest.RunResult) -> str:
    """The text of the one `ERROR:` line pytest prints for a usage error."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR: ")]
    assert len(errors) == 1, result.errlines
    return errors[0].removeprefix("ERROR: ")


# 1. The built-in group.


def test_integration_marker_is_listed_by_markers(pytester: pytest.Pytester) -> None:
    """`pytest --markers` documents the integration marker and its flag."""
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            (
                "@pytest.mark.integration: talks to real services such as databases and servers "
                "(opt-in group: runs with --integration or --all-groups)"
            )
        ]
    )


def test_integration_marker_passes_strict_markers(pytester: pytest.Pytester) -> None:
    """`@pytest.mark.integration` needs no `markers` entry under `--strict-markers`."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.integration
        def test_real_server():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(skipped=1)
    assert result.ret == pytest.ExitCode.OK


# 2. Groups declared in the ini file.


def test_declared_groups_get_a_marker_and_a_flag(pytester: pytest.Pytester) -> None:
    """Each `oneloop_groups` line registers a marker and a `--name` flag shown in `--help`."""
    pytester.makeini(GROUPS_INI)
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(
        [
            (
                "@pytest.mark.slow: takes over a second "
                "(opt-in group: runs with --slow or --all-groups)"
            ),
            "@pytest.mark.e2e: drives a browser (opt-in group: runs with --e2e or --all-groups)",
        ]
    )
    helped = pytester.runpytest("--help")
    helped.stdout.fnmatch_lines(
        [
            "opt-in test groups (pytest-oneloop):",
            "  --all-groups *",
            "  --integration *Run only the tests marked integration:*",
            "  --slow * Run only the tests marked slow: takes over a*",
            "  --e2e * Run only the tests marked e2e: drives a browser.*",
        ]
    )


def test_declared_group_passes_strict_markers(four_tests: pytest.Pytester) -> None:
    """A declared group's marker is registered, so `--strict-markers` accepts it."""
    result = four_tests.runpytest("--strict-markers")
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == pytest.ExitCode.OK


def test_group_without_description_and_percent_in_description_are_accepted(
    pytester: pytest.Pytester,
) -> None:
    """A bare `name` line is a group too, and a `%` in a description does not break `--help`."""
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider\n"
        "oneloop_groups =\n    gpu\n    cpu: uses 100% of a core\n"
    )
    pytester.runpytest("--markers").stdout.fnmatch_lines(
        ["@pytest.mark.gpu: opt-in test group (opt-in group: runs with --gpu or --all-groups)"]
    )
    pytester.runpytest("--help").stdout.fnmatch_lines(["  --cpu * uses 100% of a core.*"])


@pytest.mark.parametrize("name", ["my-group", "2fast", "class", "with space"])
def test_invalid_group_name_is_a_usage_error(pytester: pytest.Pytester, name: str) -> None:
    """A group name that cannot be a marker and a flag is refused, with the rule spelled out."""
    pytester.makeini(f"[pytest]\noneloop_groups =\n    {name}: described\n")
    assert usage_error(pytester.runpytest()) == (
        f"oneloop: invalid group name {name!r} in oneloop_groups: a group name becomes "
        "a marker (@pytest.mark.NAME) and a flag (--NAME), so it must be letters, digits "
        "and underscores, not start with a digit and not be a Python keyword "
        "(for example 'slow' or 'e2e')"
    )


def test_group_named_after_a_pytest_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A group called `skip` would capture every skipped test, so it is refused."""
    pytester.makeini("[pytest]\noneloop_groups =\n    skip: not this\n")
    assert usage_error(pytester.runpytest()) == (
        "oneloop: group name 'skip' in oneloop_groups is a marker that pytest or "
        "another plugin already uses; choose another name"
    )


def test_group_declared_twice_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """Declaring the same group on two lines is a mistake worth reporting."""
    pytester.makeini("[pytest]\noneloop_groups =\n    slow: one\n    slow: two\n")
    assert usage_error(pytester.runpytest()) == (
        "oneloop: group 'slow' is declared twice in oneloop_groups"
    )


def test_group_whose_flag_pytest_already_has_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A group called `verbose` would need `--verbose`, which pytest owns: a clear error."""
    pytester.makeini("[pytest]\noneloop_groups =\n    verbose: chatty\n")
    assert usage_error(pytester.runpytest()) == (
        "oneloop: group 'verbose' in oneloop_groups needs the flag --verbose, but pytest, "
        "a plugin or a conftest.py already defines that option; rename the group"
    )


def test_group_whose_flag_a_conftest_defines_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A conftest.py that already adds `--slow` clashes with a declared `slow` group."""
    pytester.makeini("[pytest]\noneloop_groups =\n    slow: takes time\n")
    pytester.makeconftest(
        """
        def pytest_addoption(parser):
            parser.addoption("--slow", action="store_true")
        """
    )
    assert usage_error(pytester.runpytest()) == (
        "oneloop: group 'slow' in oneloop_groups needs the flag --slow, but pytest, "
        "a plugin or a conftest.py already defines that option; rename the group"
    )


def test_conftest_defining_its_own_integration_flag_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    """A home-grown `--integration` option is reported with what to do about it."""
    pytester.makeconftest(
        """
        def pytest_addoption(parser):
            parser.addoption("--integration", action="store_true")
        """
    )
    assert usage_error(pytester.runpytest()) == (
        "oneloop: the option --integration is already defined by a plugin or a conftest.py; "
        "remove that option, since pytest-oneloop provides --integration and the "
        "'integration' marker (or disable pytest-oneloop with -p no:oneloop)"
    )


# 3. No group flag: grouped tests are skipped, the rest run.


def test_grouped_tests_are_skipped_by_default_naming_the_flag(
    four_tests: pytest.Pytester,
) -> None:
    """Without a flag each grouped test is skipped with `need --<group> option to run`."""
    result = four_tests.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.re_match_lines(
        [
            r"^SKIPPED \[1\] test_four\.py:\d+: need --integration option to run$",
            r"^SKIPPED \[1\] test_four\.py:\d+: need --slow option to run$",
            r"^SKIPPED \[1\] test_four\.py:\d+: need --integration or --slow option to run$",
        ],
        consecutive=True,
    )


# 4. Group flags: only those groups run, the rest is deselected.


def test_integration_flag_runs_only_integration_tests(four_tests: pytest.Pytester) -> None:
    """`--integration` runs the two integration tests and deselects the other two."""
    result = four_tests.runpytest("--integration", "-rA")
    result.assert_outcomes(passed=2, deselected=2)
    assert passed_ids(result) == {
        "test_four.py::test_real_server",
        "test_four.py::test_real_and_slow",
    }


def test_declared_group_flag_runs_only_that_group(four_tests: pytest.Pytester) -> None:
    """`--slow` runs the tests marked slow and nothing else."""
    result = four_tests.runpytest("--slow", "-rA")
    result.assert_outcomes(passed=2, deselected=2)
    assert passed_ids(result) == {"test_four.py::test_slow", "test_four.py::test_real_and_slow"}


def test_several_flags_run_the_union_of_their_groups(four_tests: pytest.Pytester) -> None:
    """`--integration --slow` runs every test in either group; only the ungrouped one goes."""
    result = four_tests.runpytest("--integration", "--slow", "-rA")
    result.assert_outcomes(passed=3, deselected=1)
    assert "test_four.py::test_unit" not in passed_ids(result)


def test_flag_of_an_empty_group_deselects_everything(four_tests: pytest.Pytester) -> None:
    """`--e2e` with no e2e tests deselects all four, and pytest says no test ran."""
    result = four_tests.runpytest("--e2e")
    result.assert_outcomes(deselected=4)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_deselected_tests_go_through_the_pytest_deselected_hook(
    four_tests: pytest.Pytester,
) -> None:
    """Deselection is announced with `pytest_deselected`, so reports and plugins count it."""
    recorder = four_tests.inline_run("--integration")
    deselected = [
        item.nodeid for call in recorder.getcalls("pytest_deselected") for item in call.items
    ]
    assert deselected == ["test_four.py::test_unit", "test_four.py::test_slow"]


# 5. --all-groups and ONELOOP_GROUPS.


def test_all_groups_runs_every_test_grouped_or_not(four_tests: pytest.Pytester) -> None:
    """`--all-groups` neither skips nor deselects anything."""
    four_tests.runpytest("--all-groups").assert_outcomes(passed=4)


def test_environment_variable_enables_groups_like_flags(
    four_tests: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ONELOOP_GROUPS=e2e, slow,` behaves as `--e2e --slow` (spaces and empty items ignored)."""
    monkeypatch.setenv("ONELOOP_GROUPS", " e2e, slow,")
    result = four_tests.runpytest("-rA")
    result.assert_outcomes(passed=2, deselected=2)
    assert passed_ids(result) == {"test_four.py::test_slow", "test_four.py::test_real_and_slow"}


def test_environment_variable_adds_to_the_flags(
    four_tests: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups from `ONELOOP_GROUPS` and from flags are combined."""
    monkeypatch.setenv("ONELOOP_GROUPS", "slow")
    four_tests.runpytest("--integration").assert_outcomes(passed=3, deselected=1)


def test_unknown_group_in_environment_variable_is_a_usage_error(
    four_tests: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt group in `ONELOOP_GROUPS` stops the run and lists the real groups."""
    monkeypatch.setenv("ONELOOP_GROUPS", "integration,slo,e3e")
    assert usage_error(four_tests.runpytest()) == (
        "oneloop: unknown groups 'slo', 'e3e' in ONELOOP_GROUPS; the groups are: "
        "integration, slow, e2e (declare more in the oneloop_groups ini option)"
    )


def test_misspelt_group_marker_is_an_error_under_strict_markers(
    pytester: pytest.Pytester,
) -> None:
    """`@pytest.mark.integraton` is pytest's own unknown-marker error with `--strict-markers`."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.integraton
        def test_real_server():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*'integraton' not found in `markers` configuration option*"])


# 6. A test named by node id runs without its flag.


def test_grouped_test_named_by_node_id_runs_without_the_flag(
    four_tests: pytest.Pytester,
) -> None:
    """`pytest test_four.py::test_real_server` runs it: the user asked for that test."""
    four_tests.runpytest("test_four.py::test_real_server").assert_outcomes(passed=1)


def test_named_ungrouped_test_runs_alongside_a_group_flag(four_tests: pytest.Pytester) -> None:
    """A named test outside the enabled group is not deselected by `--integration`."""
    four_tests.makepyfile(test_other=FOUR_TESTS)
    result = four_tests.runpytest(
        "--integration", "test_four.py::test_unit", "test_other.py", "-rA"
    )
    result.assert_outcomes(passed=3, deselected=2)
    assert passed_ids(result) == {
        "test_four.py::test_unit",
        "test_other.py::test_real_server",
        "test_other.py::test_real_and_slow",
    }


def test_class_and_parametrized_test_named_by_node_id_run(pytester: pytest.Pytester) -> None:
    """Naming a class or a parametrized test without its ids runs every test inside it."""
    pytester.makepyfile(
        test_named="""
        import pytest

        @pytest.mark.integration
        class TestServer:
            def test_one(self):
                pass

            def test_two(self):
                pass

        @pytest.mark.integration
        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n):
            pass

        @pytest.mark.integration
        def test_param_lookalike():
            pass
        """
    )
    result = pytester.runpytest("test_named.py::TestServer", "test_named.py::test_param")
    result.assert_outcomes(passed=4)


def test_node_id_in_a_subdirectory_is_matched_by_path(four_tests: pytest.Pytester) -> None:
    """A node id with a directory in its path names the test in that file, not its namesake."""
    four_tests.mkpydir("tests")
    (four_tests.path / "tests" / "test_four.py").write_text(FOUR_TESTS)
    result = four_tests.runpytest("tests/test_four.py::test_real_server", "test_four.py", "-rA")
    result.assert_outcomes(passed=2, skipped=3)
    assert passed_ids(result) == {"tests/test_four.py::test_real_server", "test_four.py::test_unit"}


def test_file_named_without_node_id_still_skips_its_grouped_tests(
    four_tests: pytest.Pytester,
) -> None:
    """Naming a whole file asks for its tests as usual: the grouped ones stay skipped."""
    four_tests.runpytest("test_four.py").assert_outcomes(passed=1, skipped=3)


# 7. Markers count as pytest resolves them; folder names do not.


def test_class_and_module_marks_put_their_tests_in_the_group(pytester: pytest.Pytester) -> None:
    """A class decorator, a module `pytestmark` and a `pytest.param` mark all count."""
    pytester.makepyfile(
        test_module="""
        import pytest

        pytestmark = pytest.mark.integration

        def test_in_module():
            pass
        """,
        test_class="""
        import pytest

        @pytest.mark.integration
        class TestServer:
            def test_in_class(self):
                pass

        @pytest.mark.parametrize("n", [1, pytest.param(2, marks=pytest.mark.integration)])
        def test_param(n):
            pass
        """,
    )
    pytester.runpytest().assert_outcomes(passed=1, skipped=3)
    pytester.runpytest("--integration").assert_outcomes(passed=3, deselected=1)


def test_folder_named_like_a_group_does_not_put_tests_in_it(pytester: pytest.Pytester) -> None:
    """Tests in an `integration/` package are ordinary tests unless marked."""
    pytester.mkpydir("integration")
    (pytester.path / "integration" / "test_in_folder.py").write_text(
        "def test_plain():\n    pass\n"
    )
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest("--integration").assert_outcomes(deselected=1)


# 8. With -m, -k, --lf and pytest-xdist.


def test_m_filters_within_the_enabled_group(pytester: pytest.Pytester) -> None:
    """`--integration -m "not db"` runs the integration tests not marked db."""
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\nmarkers = db: uses a database\n")
    pytester.makepyfile(
        """
        import pytest

        def test_unit():
            pass

        @pytest.mark.integration
        def test_http():
            pass

        @pytest.mark.integration
        @pytest.mark.db
        def test_db():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", "--integration", "-m", "not db", "-rA")
    result.assert_outcomes(passed=1, deselected=2)
    assert passed_ids(result) == {"test_m_filters_within_the_enabled_group.py::test_http"}


def test_m_alone_selects_group_tests_but_they_still_need_the_flag(
    four_tests: pytest.Pytester,
) -> None:
    """`-m integration` without the flag selects the tests and skips them, naming the flag."""
    result = four_tests.runpytest("-m", "integration", "-rs")
    result.assert_outcomes(skipped=2, deselected=2)
    result.stdout.re_match_lines([r"^SKIPPED \[1\] .*: need --integration option to run$"])


def test_k_filters_within_the_enabled_group(four_tests: pytest.Pytester) -> None:
    """`--integration -k server` runs the integration test matching `server` only."""
    result = four_tests.runpytest("--integration", "-k", "server", "-rA")
    result.assert_outcomes(passed=1, deselected=3)
    assert passed_ids(result) == {"test_four.py::test_real_server"}


def test_last_failed_reruns_the_failed_test_of_the_enabled_group(
    pytester: pytest.Pytester,
) -> None:
    """`--lf --integration` reruns only the integration test that failed last time."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        """
        import pytest

        def test_unit():
            pass

        @pytest.mark.integration
        def test_real_ok():
            pass

        @pytest.mark.integration
        def test_real_broken():
            assert False
        """
    )
    pytester.runpytest("--integration").assert_outcomes(passed=1, failed=1, deselected=1)
    result = pytester.runpytest("--lf", "--integration", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["FAILED *::test_real_broken*"])


def test_xdist_runs_the_same_tests_as_one_process(four_tests: pytest.Pytester) -> None:
    """`-n 2 --integration` runs exactly the tests `--integration` runs in one process."""
    single = four_tests.runpytest("--integration", "-rA")
    distributed = four_tests.runpytest("-n", "2", "--integration", "-rA")
    assert distributed.ret == pytest.ExitCode.OK
    assert distributed.parseoutcomes().get("passed") == 2
    assert "skipped" not in distributed.parseoutcomes()
    assert passed_ids(distributed) == passed_ids(single)
    assert len(passed_ids(single)) == 2


def test_xdist_skips_grouped_tests_by_default(four_tests: pytest.Pytester) -> None:
    """Without a flag, each xdist worker skips the grouped tests with the same reason."""
    result = four_tests.runpytest("-n", "2", "-rs")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.re_match_lines(
        [r"^SKIPPED \[1\] .*: need --integration or --slow option to run$"]
    )
