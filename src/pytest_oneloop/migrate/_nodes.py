"""Small operations on libcst nodes: taking items out of sequences, adding to bodies.

The comma rule: when the last item goes, the new last item takes its comma,
so `[a, b]` becomes `[a]` and a list written one item per line keeps its
trailing comma and closing line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import libcst as cst

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

_Item = TypeVar("_Item", cst.Arg, cst.Param, cst.BaseElement)


def without(items: Sequence[_Item], drop: Collection[int]) -> list[_Item]:
    """`items` less the ones at the indices `drop`, commas kept right."""
    kept = [item for index, item in enumerate(items) if index not in drop]
    last = len(items) - 1
    if kept and last in drop:
        kept[-1] = kept[-1].with_changes(comma=items[last].comma)
    return kept


def filtered(
    original: cst.BaseExpression,
    updated: cst.BaseExpression,
    drop: Callable[[cst.BaseExpression], bool],
) -> cst.BaseExpression | None:
    """The value of an assignment less what `drop` says, or None if nothing is left.

    `drop` is asked about the nodes of `original` (which carry the metadata);
    a list or tuple loses the elements it picks, anything else goes whole.
    """
    if drop(original):
        return None
    if not isinstance(original, cst.List | cst.Tuple) or not isinstance(
        updated, cst.List | cst.Tuple
    ):
        return updated
    indices = {
        index
        for index, element in enumerate(original.elements)
        if isinstance(element, cst.Element) and drop(element.value)
    }
    if not indices:
        return updated
    if len(indices) == len(original.elements):
        return None
    elements = without(updated.elements, indices)
    single = isinstance(updated, cst.Tuple) and len(elements) == 1
    if single and isinstance(elements[0].comma, cst.MaybeSentinel):
        elements[0] = elements[0].with_changes(comma=cst.Comma())
    return updated.with_changes(elements=elements)


def without_param(params: cst.Parameters, name: str) -> cst.Parameters:
    """`params` less the parameter called `name`, in whichever group it is."""
    changes: dict[str, list[cst.Param]] = {}
    for group in ("posonly_params", "params", "kwonly_params"):
        items: Sequence[cst.Param] = getattr(params, group)
        drop = {index for index, param in enumerate(items) if param.name.value == name}
        if drop:
            changes[group] = without(items, drop)
    return params.with_changes(**changes)


def prepend(function: cst.FunctionDef, statement: cst.SimpleStatementLine) -> cst.FunctionDef:
    """`function` with `statement` first in its body, after its docstring if it has one."""
    body = function.body
    if isinstance(body, cst.SimpleStatementSuite):
        return function.with_changes(body=body.with_changes(body=[*statement.body, *body.body]))
    statements = list(body.body)
    at = 1 if statements and _is_docstring(statements[0]) else 0
    statements.insert(at, statement)
    return function.with_changes(body=body.with_changes(body=statements))


def without_blank_start(original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
    """`updated` without blank lines at the top of its body if its first statement went."""
    old, new = original.body.body, updated.body.body
    if not isinstance(updated.body, cst.IndentedBlock) or not new or len(new) == len(old):
        return updated
    first = new[0]
    if not isinstance(first, cst.SimpleStatementLine | cst.BaseCompoundStatement):
        return updated
    if first.deep_equals(old[0]) or any(line.comment for line in first.leading_lines):
        return updated
    statements = [first.with_changes(leading_lines=()), *new[1:]]
    return updated.with_changes(body=updated.body.with_changes(body=statements))


def _is_docstring(statement: cst.CSTNode) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    expression = statement.body[0]
    return isinstance(expression, cst.Expr) and isinstance(
        expression.value, cst.SimpleString | cst.ConcatenatedString
    )


def running_loop() -> cst.BaseExpression:
    """A new `asyncio.get_running_loop()` expression."""
    return cst.parse_expression("asyncio.get_running_loop()")


def literal(node: cst.BaseExpression) -> str | None:
    """The value of a plain string literal, None for any other expression."""
    if isinstance(node, cst.SimpleString) and isinstance(node.evaluated_value, str):
        return node.evaluated_value
    return None


def param(params: cst.Parameters, name: str) -> cst.Param | None:
    """The parameter called `name`, in whichever group it is."""
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    return next((param for param in every if param.name.value == name), None)
