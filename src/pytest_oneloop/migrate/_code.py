"""Rewrite one Python module written for pytest-asyncio, with libcst.

libcst keeps comments and formatting, and its qualified names see through
`import pytest_asyncio as pa` and `from pytest_asyncio import fixture`.
What cannot be rewritten without a person is reported as a `Finding`, and
left as it is.
"""

from __future__ import annotations

import re
from typing import TypeVar

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor

from pytest_oneloop.migrate import _nodes
from pytest_oneloop.migrate._functions import FIXTURE, FunctionRewriter
from pytest_oneloop.migrate._messages import event_loop_by_name, other_use, wide_get_event_loop
from pytest_oneloop.migrate._result import Outcome, UnparsableError

IS_ASYNC_TEST = "pytest_asyncio.is_async_test"
WIDE_SCOPES = frozenset({"class", "module", "package", "session"})

_T = TypeVar("_T", bound=cst.CSTNode)
_PARSER_PREFIX = re.compile(r"^(parser error: )?(error at \d+:\d+: )?")


def migrate_python(source: bytes, *, keep_markers: bool = False) -> Outcome:
    """The module rewritten for pytest-oneloop, and what is left to a person.

    A module that mentions neither `asyncio` nor `event_loop` has nothing to
    rewrite and is not parsed.
    """
    if b"asyncio" not in source and b"event_loop" not in source:
        return Outcome(source)
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        reason = _PARSER_PREFIX.sub("", exc.message)
        raise UnparsableError(exc.raw_line, reason) from None
    rewriter = _Rewriter(CodemodContext(), keep_markers=keep_markers)
    migrated = rewriter.transform_module(module)
    return Outcome(migrated.bytes, tuple(sorted(set(rewriter.findings))), migrated.encoding)


class _Rewriter(FunctionRewriter):
    """One pass over the module: rewrites in the `leave_` methods, findings on the way in.

    After it, libcst's import visitors add the imports the rewrites need
    (`pytest`, `asyncio`, `inspect`) and remove pytest_asyncio's unused ones.
    """

    def __init__(self, context: CodemodContext, *, keep_markers: bool) -> None:
        """`keep_markers` leaves `@pytest.mark.asyncio` and `pytestmark` alone."""
        super().__init__(context, keep_markers=keep_markers)
        self._async_test_calls: set[cst.Call] = set()
        self._handled: set[cst.CSTNode] = set()

    # Imports: pytest_asyncio's go once nothing uses them; submodules need a person.

    def visit_Import(self, node: cst.Import) -> bool:
        """Schedule `import pytest_asyncio` for removal; report `import pytest_asyncio.x`."""
        for alias in node.names:
            module = cst.helpers.get_full_name_for_node(alias.name) or ""
            if module == "pytest_asyncio":
                asname = alias.evaluated_alias
                RemoveImportsVisitor.remove_unused_import(self.context, module, asname=asname)
            elif module.startswith("pytest_asyncio."):
                self.report(node, other_use(module))
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        """Schedule `from pytest_asyncio import ...` for removal, name by name."""
        module = cst.helpers.get_full_name_for_node(node.module) if node.module else None
        if node.relative or module is None or not module.startswith("pytest_asyncio"):
            return False
        if module != "pytest_asyncio":
            self.report(node, other_use(module))
        elif isinstance(node.names, cst.ImportStar):
            self.report(node, other_use("pytest_asyncio.*"))
        else:
            for alias in node.names:
                name = alias.evaluated_name
                RemoveImportsVisitor.remove_unused_import(
                    self.context, module, name, asname=alias.evaluated_alias
                )
        return False

    # Names: pytest_asyncio.fixture becomes pytest.fixture; any other use is reported.

    def _visit_reference(self, node: cst.Name | cst.Attribute) -> bool:
        names = self.names(node)
        if FIXTURE in names or node in self._handled:
            return False
        ours = sorted(n for n in names if n.split(".")[0] == "pytest_asyncio")
        if ours:
            self.report(node, other_use(ours[0]))
            return False
        return True

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        """Report a use of pytest-asyncio that has no rewrite."""
        return self._visit_reference(node)

    def visit_Name(self, node: cst.Name) -> bool:
        """Report a use of pytest-asyncio that has no rewrite."""
        return self._visit_reference(node)

    def _fixture_reference(self, original: cst.CSTNode, updated: _T) -> _T | cst.Attribute:
        if FIXTURE not in self.names(original):
            return updated
        AddImportsVisitor.add_needed_import(self.context, "pytest")
        return cst.Attribute(value=cst.Name("pytest"), attr=cst.Name("fixture"))

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> cst.BaseExpression:
        """`pytest_asyncio.fixture` (under any alias) becomes `pytest.fixture`."""
        return self._fixture_reference(original_node, updated_node)

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
        """A use of the dropped `event_loop` parameter; `fixture` imported from pytest_asyncio."""
        if original_node in self.loop_uses:
            AddImportsVisitor.add_needed_import(self.context, "asyncio")
            return _nodes.running_loop()
        return self._fixture_reference(original_node, updated_node)

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        """`pytest.importorskip("pytest_asyncio")` and the like need a person."""
        value = node.evaluated_value
        if isinstance(value, str) and value.split(".")[0] == "pytest_asyncio":
            self.report(node, other_use(value))

    # Calls: is_async_test(item), the fixture's loop_scope=, event_loop by name.

    def visit_Call(self, node: cst.Call) -> None:
        """Note the calls to rewrite, report the ones that need a person."""
        names = self.names(node.func)
        if IS_ASYNC_TEST in names and len(node.args) == 1 and _plain(node.args[0]):
            self._async_test_calls.add(node)
            self._handled.add(node.func)
        if "asyncio.get_event_loop" in names:
            wide = next((f for f in reversed(self.functions) if f.scope in WIDE_SCOPES), None)
            if wide is not None:
                self.report(node, wide_get_event_loop(wide.name, wide.scope or ""))
        by_name = "pytest.mark.usefixtures" in names or (
            isinstance(node.func, cst.Attribute) and node.func.attr.value == "getfixturevalue"
        )
        if by_name and any(_nodes.literal(arg.value) == "event_loop" for arg in node.args):
            self.report(node, event_loop_by_name())

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        """Rewrite `is_async_test(item)`; drop `loop_scope=` from the fixture decorator."""
        if original_node in self._async_test_calls:
            AddImportsVisitor.add_needed_import(self.context, "inspect")
            item = updated_node.args[0].value
            if not isinstance(item, cst.Name | cst.Attribute | cst.Subscript | cst.Call):
                item = item.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            func = cst.parse_expression("inspect.iscoroutinefunction")
            obj = cst.Attribute(value=item, attr=cst.Name("obj"))
            return updated_node.with_changes(func=func, args=[cst.Arg(obj)])
        if FIXTURE not in self.names(original_node.func):
            return updated_node
        drop = {
            index
            for index, arg in enumerate(updated_node.args)
            if arg.keyword is not None and arg.keyword.value == "loop_scope"
        }
        if not drop:
            return updated_node
        if len(drop) == len(updated_node.args):
            return updated_node.func
        return updated_node.with_changes(args=_nodes.without(updated_node.args, drop))

    # Assignments: pytestmark and pytest_plugins.

    def visit_Assign(self, node: cst.Assign) -> bool:
        """`pytest_plugins` is handled as a whole when it is left."""
        return _target(node) != "pytest_plugins"

    def leave_Assign(
        self, original_node: cst.Assign, updated_node: cst.Assign
    ) -> cst.Assign | cst.RemovalSentinel:
        """Drop the asyncio marker from `pytestmark`, "pytest_asyncio" from `pytest_plugins`."""
        value = self._assigned(_target(original_node), original_node.value, updated_node.value)
        if value is None:
            return cst.RemoveFromParent()
        return updated_node.with_changes(value=value)

    def leave_AnnAssign(
        self, original_node: cst.AnnAssign, updated_node: cst.AnnAssign
    ) -> cst.AnnAssign | cst.RemovalSentinel:
        """`pytestmark: list[pytest.MarkDecorator] = [...]` as `pytestmark = [...]`."""
        if original_node.value is None or updated_node.value is None:
            return updated_node
        target = cst.helpers.get_full_name_for_node(original_node.target)
        value = self._assigned(target, original_node.value, updated_node.value)
        if value is None:
            return cst.RemoveFromParent()
        return updated_node.with_changes(value=value)

    def _assigned(
        self, target: str | None, original: cst.BaseExpression, updated: cst.BaseExpression
    ) -> cst.BaseExpression | None:
        if target == "pytestmark" and not self.keep_markers and not self.functions:
            return _nodes.filtered(original, updated, self.is_marker)
        if target == "pytest_plugins" and not self.functions:
            return _nodes.filtered(
                original,
                updated,
                lambda e: (_nodes.literal(e) or "").split(".")[0] == "pytest_asyncio",
            )
        return updated


def _target(node: cst.Assign) -> str | None:
    if len(node.targets) != 1:
        return None
    return cst.helpers.get_full_name_for_node(node.targets[0].target)


def _plain(arg: cst.Arg) -> bool:
    return arg.keyword is None and arg.star == ""
