"""`pytest-oneloop migrate`: rewrite a suite written for pytest-asyncio.

Run as `pytest-oneloop migrate [PATH ...]` or `python -m
pytest_oneloop.migrate [PATH ...]`; `cli` is the command, `_code` rewrites
Python modules with libcst, `_config` rewrites configuration and
requirement files with tomlkit and by line. Nothing here is imported by the
plugin: libcst and tomlkit (the `migrate` extra) are needed only to run the
command.
"""
