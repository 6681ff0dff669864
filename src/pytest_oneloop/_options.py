"""An ini option and the command-line flag that overrides it, declared and read as one.

Several features take a setting both ways, `oneloop_timeout` and
`--async-timeout` say: the flag's `dest` is the ini name, and a flag that
was not given reads as None, so the ini value applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def add(parser: pytest.Parser, name: str, flag: str, text: str, default: str | bool = "") -> None:
    """Register ini option `name` and `flag`, which takes SECONDS (a bool `default`: nothing).

    `text` is the ini option's help; the flag's adds "(ini: name)".
    """
    group = parser.getgroup("oneloop")
    flag_help = f"{text} (ini: {name})"
    if isinstance(default, bool):
        parser.addini(name, text, type="bool", default=default)
        group.addoption(flag, dest=name, action="store_true", default=None, help=flag_help)
    else:
        parser.addini(name, text, default=default)
        group.addoption(flag, dest=name, metavar="SECONDS", default=None, help=flag_help)


def given(config: pytest.Config, name: str, flag: str) -> tuple[object, str]:
    """The flag's value when it was given, else the ini option's, and which one it is."""
    value = config.getoption(name)
    if value is None:
        return config.getini(name), name
    return value, flag
