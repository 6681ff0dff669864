"""The part of the rewriter that looks at classes and functions.

It drops `@pytest.mark.asyncio`, finds the tests and fixtures that request
`event_loop` (an async one loses the parameter, a sync one is reported),
and reports user-defined `event_loop` and `event_loop_policy` fixtures.
`_code._Rewriter` adds the rest; both share the state kept here.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import PositionProvider, QualifiedNameProvider, ScopeProvider

from pytest_oneloop.migrate import _nodes
from pytest_oneloop.migrate._messages import loop_fixture, sync_event_loop
from pytest_oneloop.migrate._result import Finding

FIXTURE = "pytest_asyncio.fixture"
FIXTURES = frozenset({"pytest.fixture", FIXTURE})
MARKER = "pytest.mark.asyncio"
#: Marker arguments that only chose pytest-asyncio's loop; others (loop_factories) still count.
LOOP_SCOPE_ARGUMENTS = frozenset({"loop_scope", "scope"})
LOOP_FIXTURES = frozenset({"event_loop", "event_loop_policy"})


@dataclass
class Function:
    """What the rewriter knows about a function it is in."""

    name: str
    scope: str | None  # a fixture's scope when it is a literal, None for the rest
    loop_param: bool = False
    bind_loop: bool = False


class FunctionRewriter(VisitorBasedCodemodCommand):
    """Markers on classes and functions, and the `event_loop` parameter."""

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider, ScopeProvider)

    def __init__(self, context: CodemodContext, *, keep_markers: bool) -> None:
        """`keep_markers` leaves `@pytest.mark.asyncio` and `pytestmark` alone."""
        super().__init__(context)
        self.keep_markers = keep_markers
        self.findings: list[Finding] = []
        self.functions: list[Function] = []
        self.loop_uses: set[cst.Name] = set()
        self._classes: list[str] = []

    def names(self, node: cst.CSTNode) -> set[str]:
        """The qualified names `node` may stand for (`pytest_asyncio.fixture`, ...)."""
        return {name.name for name in self.get_metadata(QualifiedNameProvider, node, set())}

    def report(self, node: cst.CSTNode, message: str) -> None:
        """A case for a person, at the line where `node` starts."""
        line = self.get_metadata(PositionProvider, node).start.line
        self.findings.append(Finding(line, message))

    def is_marker(self, expression: cst.BaseExpression) -> bool:
        """`pytest.mark.asyncio`, alone or with only loop scope arguments."""
        call = expression if isinstance(expression, cst.Call) else cst.Call(expression)
        if MARKER not in self.names(call.func):
            return False
        return all(
            arg.keyword is not None and arg.keyword.value in LOOP_SCOPE_ARGUMENTS
            for arg in call.args
        )

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        """Tests are methods of `Test*` classes."""
        self._classes.append(node.name.value)

    def leave_ClassDef(
        self, original_node: cst.ClassDef, updated_node: cst.ClassDef
    ) -> cst.ClassDef:
        """Drop `@pytest.mark.asyncio` from the class."""
        self._classes.pop()
        updated_node = updated_node.with_changes(
            decorators=self._decorators(original_node, updated_node)
        )
        return _nodes.without_blank_start(original_node, updated_node)

    def _decorators(
        self, original: cst.FunctionDef | cst.ClassDef, updated: cst.FunctionDef | cst.ClassDef
    ) -> list[cst.Decorator]:
        if self.keep_markers:
            return list(updated.decorators)
        return [
            new
            for old, new in zip(original.decorators, updated.decorators, strict=True)
            if not self.is_marker(old.decorator)
        ]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        """Decide what becomes of an `event_loop` parameter; report loop fixtures."""
        is_fixture, scope, fixture_name = self._fixture(node)
        name = fixture_name or node.name.value
        function = Function(name, scope)
        in_test_class = not self._classes or self._classes[-1].startswith("Test")
        is_test = not self.functions and in_test_class and node.name.value.startswith("test")
        self.functions.append(function)
        if is_fixture and name in LOOP_FIXTURES:
            self.report(node, loop_fixture(name))
            function.scope = None  # its get_event_loop() goes with it
            return
        param = _nodes.param(node.params, "event_loop")
        if param is None or not (is_fixture or is_test):
            return
        if node.asynchronous is None:
            self.report(node, sync_event_loop(name))
            return
        function.loop_param = True
        scope_of = self.get_metadata(ScopeProvider, param.name)
        assignments = scope_of.assignments["event_loop"] if scope_of is not None else set()
        accesses = [access for assignment in assignments for access in assignment.references]
        # A closure may run where no loop is running: it keeps a name bound to the loop.
        function.bind_loop = len(assignments) > 1 or any(a.scope is not scope_of for a in accesses)
        if not function.bind_loop:
            self.loop_uses.update(a.node for a in accesses if isinstance(a.node, cst.Name))
        AddImportsVisitor.add_needed_import(self.context, "asyncio")

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        """Drop markers and the `event_loop` parameter, binding it in the body if needed."""
        function = self.functions.pop()
        updated_node = updated_node.with_changes(
            decorators=self._decorators(original_node, updated_node)
        )
        if not function.loop_param:
            return updated_node
        params = _nodes.without_param(updated_node.params, "event_loop")
        updated_node = updated_node.with_changes(params=params)
        if function.bind_loop:
            target = cst.AssignTarget(cst.Name("event_loop"))
            bind = cst.SimpleStatementLine([cst.Assign([target], _nodes.running_loop())])
            updated_node = _nodes.prepend(updated_node, bind)
        return updated_node

    def _fixture(self, node: cst.FunctionDef) -> tuple[bool, str | None, str | None]:
        """Whether `node` is a fixture, and its scope and name when they are literals."""
        for decorator in node.decorators:
            expression = decorator.decorator
            call = expression if isinstance(expression, cst.Call) else cst.Call(expression)
            if self.names(call.func) & FIXTURES:
                keywords = {
                    a.keyword.value: _nodes.literal(a.value) for a in call.args if a.keyword
                }
                return True, keywords.get("scope"), keywords.get("name")
        return False, None, None
