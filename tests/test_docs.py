"""Every code block of README.md and docs/*.md is run or checked, so the docs cannot drift.

The convention (docs/architecture.md, "Code blocks in the docs"):

- A `python` block is a test module, run with pytester: it must pass.
- A block whose first line is a comment starting with a file name
  (`# conftest.py`, `# models.py`, `# pytest.ini`, `# pyproject.toml`) is
  that file: it is written beside every test block after it in the same
  document (a later block of the same name replaces it). A `test_*.py` name
  makes the block a test module of that name instead. Each configuration
  file is also loaded on its own with `--strict-config`.
- `console` blocks hold commands: `pytest ...` must parse and configure
  (with the files above in place), `pip install` may name only this
  project's extras or installed packages, `make` only existing targets,
  `python SCRIPT` only a script of the repository (`python -m MODULE` an
  importable module), `pytest-oneloop ...` only arguments its parser takes.
- `<!-- docs-test: DIRECTIVE -->` on the line before a block (blank lines
  allowed between) changes what happens to it:
  `outcomes failed=1 passed=2` (test block: exactly these outcomes instead
  of passing), `output` (the block's lines must appear, in order, in the
  output of the nearest test block above it; numbers may differ), and
  `skip (reason)` (not checked; there may be only a few).
- Any other block is an error: give it a language or a directive.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import os
import re
import shlex
import textwrap
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_oneloop.migrate import cli

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# What the DB blocks use is imported once, before any pytester run: pytester
# drops the modules an in-process run imported, and importing a C extension
# (greenlet's) a second time in one process crashes it.
for _module in ("aiosqlite", "factory", "greenlet", "sqlalchemy"):
    importlib.import_module(_module)

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_EXEMPTED = 6
CONFIG_FILES = ("pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
FILE_LANGUAGES = {"python": ".py", "ini": ".ini", "toml": ".toml", "cfg": ".cfg"}
CONSOLE_LANGUAGES = ("console", "shell", "sh", "bash")

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_DIRECTIVE = re.compile(r"^<!--\s*docs-test:\s*(?P<directive>.*?)\s*-->\s*$")
_FILE_COMMENT = re.compile(r"^#\s*(?P<name>[\w./-]+\.(?:py|ini|toml|cfg))\b")
_TEST_MODULE = re.compile(r"(^|/)(test_\w+|\w+_test)\.py$")
_SKIP = re.compile(r"^skip \((?P<reason>.+)\)$")
_OUTCOME = re.compile(r"^(?P<key>passed|failed|skipped|errors|xfailed|xpassed|warnings)=(\d+)$")
_LINK = re.compile(r"\]\((?P<target>[^)\s#]+)(?:#[^)]*)?\)")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block and what the convention makes of it."""

    doc: str
    line: int
    language: str
    text: str
    directive: str
    filename: str | None

    def __str__(self) -> str:
        """`docs/async.md:20`: where to look, used as the test id."""
        return f"{self.doc}:{self.line}"

    @property
    def kind(self) -> str:
        """test, file, console, output, skip, or the reason the block is not checked."""
        directive = self.directive
        if directive == "skip" or directive.startswith("skip "):
            return "skip" if _SKIP.match(directive) else "error: write the reason, skip (why)"
        if directive == "output":
            return "output"
        if directive and not directive.startswith("outcomes "):
            return f"error: unknown directive {directive!r}"
        kind = self._kind_by_content()
        if directive and kind != "test":
            return "error: 'outcomes' applies to python test blocks only"
        return kind

    def _kind_by_content(self) -> str:
        if self.language == "python" and (
            self.filename is None or _TEST_MODULE.search(self.filename)
        ):
            return "test"
        if self.language in CONSOLE_LANGUAGES:
            return "console"
        if self.language not in FILE_LANGUAGES:
            return (
                "error: not checked; give it a language (python, ini, toml, console) or "
                "a directive (<!-- docs-test: output --> or <!-- docs-test: skip (why) -->)"
            )
        if self.filename is None:
            return "error: name the file in the first line, e.g. '# pytest.ini'"
        if not self.filename.endswith(FILE_LANGUAGES[self.language]):
            return f"error: a {self.language} block cannot be {self.filename}"
        return "file"

    @property
    def outcomes(self) -> dict[str, int] | None:
        """The outcomes an `outcomes` directive expects, or None: the block must pass."""
        words = self.directive.split()
        if not words or words[0] != "outcomes":
            return None
        expected: dict[str, int] = {}
        for word in words[1:]:
            match = _OUTCOME.match(word)
            if match is None:
                pytest.fail(f"{self}: bad outcome {word!r} in the directive", pytrace=False)
            expected[match["key"]] = int(match[2])
        return expected

    @property
    def test_name(self) -> str:
        """The module name a test block is run as."""
        if self.filename is not None:
            return self.filename
        stem = re.sub(r"\W", "_", Path(self.doc).stem.lower())
        return f"test_{stem}_{self.line}.py"


def parse(doc: str, text: str) -> list[Block]:
    """The fenced blocks of one Markdown document, in order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, start = match["fence"], index
        end = start + 1
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        body = lines[start + 1 : end]
        blocks.append(
            Block(
                doc=doc,
                line=start + 1,
                language=match["info"].lower(),
                text="\n".join(body) + "\n",
                directive=_directive_before(lines, start),
                filename=_filename(body),
            )
        )
        index = end + 1
    return blocks


def _directive_before(lines: Sequence[str], start: int) -> str:
    for line in reversed(lines[:start]):
        if line.strip():
            match = _DIRECTIVE.match(line.strip())
            return match["directive"] if match else ""
    return ""


def _filename(body: Sequence[str]) -> str | None:
    match = _FILE_COMMENT.match(body[0]) if body else None
    return match["name"] if match else None


def all_blocks() -> list[Block]:
    """Every block of every document."""
    return [
        block
        for path in DOCS
        for block in parse(path.relative_to(ROOT).as_posix(), path.read_text("utf-8"))
    ]


BLOCKS = all_blocks()


def of_kind(kind: str) -> list[Block]:
    """The blocks of one kind, for parametrizing."""
    return [block for block in BLOCKS if block.kind == kind]


def files_in_scope(block: Block, blocks: Iterable[Block] = BLOCKS) -> dict[str, Block]:
    """The file blocks above `block` in its document, the last of each name."""
    files: dict[str, Block] = {}
    for other in blocks:
        if other.doc != block.doc or other.line >= block.line:
            continue
        if other.kind == "file" and other.filename is not None:
            files[other.filename] = other
    return files


def outputs_of(block: Block) -> list[Block]:
    """The output blocks checked against the run of test block `block`."""
    found: list[Block] = []
    following = [other for other in BLOCKS if other.doc == block.doc and other.line > block.line]
    for other in following:
        if other.kind == "test":
            break
        if other.kind == "output":
            found.append(other)
    return found


def write_files(pytester: pytest.Pytester, files: Iterable[Block]) -> None:
    """Write the file blocks into the pytester directory.

    A configuration file from the docs replaces the one the `pytester`
    fixture wrote, so that it is the one pytest reads.
    """
    for block in files:
        assert block.filename is not None
        if block.filename in CONFIG_FILES:
            for name in CONFIG_FILES:
                (pytester.path / name).unlink(missing_ok=True)
        path = pytester.path / block.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(block.text), "utf-8")


def first_missing_line(sample: str, output: Sequence[str]) -> str | None:
    """The first line of `sample` not found in `output` after the lines before it.

    A sample line may be part of an output line (the `===` around pytest's
    summary are left out of samples); numbers match any number and any run
    of spaces matches any other.
    """
    position = 0
    for line in filter(None, (line.strip() for line in sample.splitlines())):
        pattern = re.compile(re.sub(r"\d+", r"\\d+", re.sub(r"(\\ | )+", r"\\s+", re.escape(line))))
        found = (i for i in range(position, len(output)) if pattern.search(output[i]))
        index = next(found, None)
        if index is None:
            return line
        position = index + 1
    return None


@pytest.mark.parametrize("block", of_kind("test"), ids=str)
def test_every_python_block_runs_and_passes(pytester: pytest.Pytester, block: Block) -> None:
    """A python block, with the files named above it, passes (or has the outcomes it declares)."""
    write_files(pytester, files_in_scope(block).values())
    pytester.makepyfile(**{block.test_name.removesuffix(".py"): block.text})
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    output = "\n".join(result.outlines + result.errlines)
    expected = block.outcomes
    if expected is None:
        assert result.ret == pytest.ExitCode.OK, f"{block} does not pass:\n{output}"
    else:
        result.assert_outcomes(**expected)
    here = f"{pytester.path}{os.sep}"
    shown = [line.replace(here, "") for line in result.outlines]
    for sample in outputs_of(block):
        missing = first_missing_line(sample.text, shown)
        assert missing is None, f"{sample}: {missing!r} is not in the output of {block}:\n{output}"


@pytest.mark.parametrize(
    "block", [block for block in of_kind("file") if block.filename in CONFIG_FILES], ids=str
)
def test_every_configuration_block_is_accepted_by_strict_config(
    pytester: pytest.Pytester, block: Block
) -> None:
    """Each ini or toml block is read as the configuration and has no unknown key."""
    others = [file for file in files_in_scope(block).values() if file.filename not in CONFIG_FILES]
    write_files(pytester, [*others, block])
    result = pytester.runpytest("--strict-config", "--collect-only", "-p", "no:cacheprovider")
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED, f"{block} is refused:\n{output}"
    assert f"configfile: {block.filename}" in output, f"{block} was not read:\n{output}"


@pytest.mark.parametrize("block", of_kind("console"), ids=str)
def test_every_console_command_is_valid(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, block: Block
) -> None:
    """Each command is real: pytest options configure, pip packages and make targets exist."""
    write_files(pytester, files_in_scope(block).values())
    for line in block.text.splitlines():
        words = shlex.split(line, comments=True)
        with monkeypatch.context() as env:
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                name, _, value = words.pop(0).partition("=")
                env.setenv(name, value)
            if not words:
                continue
            command, args = words[0], words[1:]
            if command == "pytest":
                check_pytest_command(pytester, args, f"{block}: {line.strip()}")
            elif command == "pip":
                check_pip_command(args, f"{block}: {line.strip()}")
            elif command == "make":
                check_make_command(args, f"{block}: {line.strip()}")
            elif Path(command).name in ("python", "python3"):
                check_python_command(args, f"{block}: {line.strip()}")
            elif command == "pytest-oneloop":
                check_oneloop_command(args, f"{block}: {line.strip()}")
            else:
                pytest.fail(
                    f"{block}: no check for {command!r}; exempt the block with "
                    "<!-- docs-test: skip (why) --> or teach tests/test_docs.py the command",
                    pytrace=False,
                )


def check_pytest_command(pytester: pytest.Pytester, args: list[str], where: str) -> None:
    """The options parse and every plugin's pytest_configure accepts them."""
    try:
        pytester.parseconfigure(*args)
    except pytest.UsageError as exc:
        pytest.fail(f"{where}: {exc}", pytrace=False)


def check_pip_command(args: list[str], where: str) -> None:
    """`pip install` names this project's extras, or packages this project installs."""
    if args[:1] == ["uninstall"]:
        return
    assert args[:1] == ["install"], f"{where}: only pip install and uninstall are checked"
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"][
            "optional-dependencies"
        ]
    )
    for requirement in (arg for arg in args[1:] if not arg.startswith("-")):
        match = re.fullmatch(r"(?P<name>[\w.-]+)(?:\[(?P<extras>[\w,-]+)\])?", requirement)
        assert match is not None, f"{where}: cannot read {requirement!r}"
        if match["name"] == "pytest-oneloop":
            unknown = set((match["extras"] or "").split(",")) - extras - {""}
            assert not unknown, f"{where}: no extra {sorted(unknown)} in pyproject.toml"
        else:
            try:
                importlib.metadata.distribution(match["name"])
            except importlib.metadata.PackageNotFoundError:
                pytest.fail(f"{where}: {match['name']!r} is not a package this project uses")


def check_make_command(args: list[str], where: str) -> None:
    """Each target exists in the Makefile."""
    makefile = (ROOT / "Makefile").read_text("utf-8")
    for target in args:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), (
            f"{where}: the Makefile has no target {target!r}"
        )


def check_python_command(args: list[str], where: str) -> None:
    """`python path/to/script.py ...` names a script of this repository; `-m` a module."""
    if args[:1] == ["-m"]:
        module = args[1] if len(args) > 1 else ""
        assert importlib.util.find_spec(module) is not None, f"{where}: no module {module!r}"
        return
    script = next((arg for arg in args if not arg.startswith("-")), None)
    assert script is not None, f"{where}: only `python SCRIPT ...` is checked"
    assert (ROOT / script).is_file(), f"{where}: there is no {script} in the repository"


def check_oneloop_command(args: list[str], where: str) -> None:
    """`pytest-oneloop migrate ...` is accepted by the command's own parser."""
    try:
        cli.parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{where}: the pytest-oneloop command refuses these arguments", pytrace=False)


def test_every_block_is_checked_or_exempted() -> None:
    """No block escapes the convention: each is a test, a file, commands, output or a skip."""
    problems = [f"{block}: {block.kind}" for block in BLOCKS if block.kind.startswith("error")]
    assert not problems, "\n".join(problems)


def test_only_a_few_blocks_are_exempted_and_each_says_why() -> None:
    """`docs-test: skip (why)` stays the exception: at most MAX_EXEMPTED blocks."""
    exempted = [f"{block}: {block.directive}" for block in of_kind("skip")]
    assert len(exempted) <= MAX_EXEMPTED, (
        f"{len(exempted)} blocks are exempted, more than {MAX_EXEMPTED}:\n" + "\n".join(exempted)
    )


def test_every_output_block_follows_a_test_block() -> None:
    """An output sample has a run to be compared with."""
    tests = of_kind("test")
    orphans = [
        str(sample)
        for sample in of_kind("output")
        if not any(test.doc == sample.doc and test.line < sample.line for test in tests)
    ]
    assert not orphans, f"output blocks with no test block above them: {orphans}"


def test_every_page_of_the_docs_is_linked_from_the_readme() -> None:
    """A reader starting at the README can reach each page in docs/."""
    readme = (ROOT / "README.md").read_text("utf-8")
    unlinked = [
        path.relative_to(ROOT).as_posix()
        for path in DOCS[1:]
        if f"]({path.relative_to(ROOT).as_posix()})" not in readme
    ]
    assert not unlinked, f"not linked from README.md: {unlinked}"


def test_every_relative_link_points_at_a_file_that_exists() -> None:
    """Links between the docs, and to the code, are not broken."""
    broken = [
        f"{path.relative_to(ROOT).as_posix()}: {match['target']}"
        for path in DOCS
        for match in _LINK.finditer(path.read_text("utf-8"))
        if "://" not in match["target"] and not (path.parent / match["target"]).exists()
    ]
    assert not broken, "\n".join(broken)


def test_a_named_block_is_a_file_for_the_test_blocks_below_it() -> None:
    """The convention itself: file blocks apply downwards, the last of a name wins."""
    doc = textwrap.dedent(
        """\
        ```python
        def test_before(): pass
        ```

        ```ini
        # pytest.ini
        [pytest]
        ```

        ```python
        # conftest.py, shared fixtures
        ```

        ```ini
        # pytest.ini
        [pytest]
        addopts = -x
        ```

        <!-- docs-test: outcomes failed=1 -->
        ```python
        # test_api.py
        def test_after(): assert False
        ```

        <!-- docs-test: output -->
        ```
        FAILED test_api.py::test_after
        ```
        """
    )
    before, _ini, conftest, ini, after, _output = blocks = parse("doc.md", doc)
    assert [block.kind for block in blocks] == ["test", "file", "file", "file", "test", "output"]
    assert files_in_scope(before, blocks) == {}
    assert files_in_scope(after, blocks) == {"pytest.ini": ini, "conftest.py": conftest}
    assert (after.test_name, after.outcomes) == ("test_api.py", {"failed": 1})
    assert before.test_name == "test_doc_1.py"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("```\nplain\n```\n", "error: not checked; give it a language"),
        ("```ini\n[pytest]\n```\n", "error: name the file in the first line, e.g. '# pytest.ini'"),
        ("<!-- docs-test: skip -->\n```\nx\n```\n", "error: write the reason, skip (why)"),
        ("<!-- docs-test: skipp (x) -->\n```\nx\n```\n", "error: unknown directive 'skipp (x)'"),
        ("```toml\n# pytest.ini\n```\n", "error: a toml block cannot be pytest.ini"),
    ],
)
def test_a_block_outside_the_convention_is_reported(text: str, kind: str) -> None:
    """Blocks that nothing would check are errors, each saying what to do."""
    (block,) = parse("doc.md", text)
    assert block.kind.startswith(kind)


def test_numbers_in_output_samples_match_any_number() -> None:
    """Task names, line numbers and durations vary; the words around them must not."""
    output = ["  - Task-12 running poll() at test_api.py:7", "1 passed in 0.31s"]
    assert first_missing_line("- Task-3 running poll() at test_api.py:5\n", output) is None
    assert first_missing_line("1 failed in 0.5s\n", output) == "1 failed in 0.5s"
