"""Which markers a test carries, without walking its node chain for each question.

Several parts of the plugin ask whether a test has a marker (`anyio`,
`trio`, `async_timeout`): three questions per async test with an async
fixture. `Node.get_closest_marker` walks the node chain for each one. Here
the names on each parent of a test (module, class, package, directory) are
collected once and kept on that parent's stash, shared by all its tests; a
test adds its own markers, read afresh at every call. A part that needs
the marker itself, not just its name, calls `get_closest_marker` only when
the name is there.

Measured with `bench/instructions.py --tests 400` on Python 3.11: walking
the chain with `get_closest_marker` for each question costs about 60k
instructions per async test (2 % of a test) more than this.
"""

from __future__ import annotations

from typing import Any

import pytest

_INHERITED = pytest.StashKey[frozenset[str]]()
_NONE: frozenset[str] = frozenset()


def marker_names(item: pytest.Item) -> frozenset[str]:
    """The names of the markers on `item` and on every node above it."""
    parent = item.parent
    names = _NONE if parent is None else _inherited(parent)
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
