"""What migrating one file gives: its new bytes and the cases left to a person."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Finding:
    """Something the command does not rewrite: where it is and what to do."""

    line: int
    message: str


@dataclass(frozen=True)
class Outcome:
    """One file after migration: its bytes (the same if nothing changed) and findings."""

    text: bytes
    findings: tuple[Finding, ...] = ()
    encoding: str = "utf-8"


class UnparsableError(Exception):
    """The file cannot be parsed: it is left alone, and reported at `line`."""

    def __init__(self, line: int, reason: str) -> None:
        """Keep where parsing stopped and why."""
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason
