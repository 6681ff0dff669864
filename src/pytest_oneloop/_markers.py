"""Which markers a test carries, without walking its node chain every time.

Several parts of the plugin ask whether a test has a marker (`anyio`,
`trio`, `async_timeout`, a group's). `Node.get_closest_marker` walks the
node chain on every call. Here the names on each parent of a test (module,
class, package, directory) are collected once and kept on that parent,
shared by all its tests; a test adds its own markers, read afresh at every
call. A part that needs the marker itself, not just its name, calls
`get_closest_marker` only when the name is there.
"""

from __future__ import annotations

from typing import Any

import pytest

_INHERITED = pytest.StashKey[frozenset[str]]()
_NONE: frozenset[str] = frozenset()


#: The parent `marker_names` saw last, and its names: the tests of a module
#: or class run one after the other, and a stash lookup costs two Python calls.
_last: tuple[Any, frozenset[str]] = (None, _NONE)


def marker_names(item: pytest.Item) -> frozenset[str]:
    """The names of the markers on `item` and on every node above it."""
    global _last  # noqa: PLW0603
    parent = item.parent
    last, names = _last
    if parent is not last:
        names = _NONE if parent is None else _inherited(parent)
        _last = (parent, names)
    own = item.own_markers
    return names.union(marker.name for marker in own) if own else names


def _inherited(node: Any) -> frozenset[str]:  # a pytest node: Collector, or Item for sub-items
    names: frozenset[str] | None = node.stash.get(_INHERITED, None)
    if names is None:
        parent = node.parent
        names = _NONE if parent is None else _inherited(parent)
        own = node.own_markers
        if own:
            names = names.union(marker.name for marker in own)
        node.stash[_INHERITED] = names
    return names
