"""The one base class of every error modelkin raises about its input.

A :class:`ModelkinError` names the problem and, where there is one, the fix; the command line
prints its message as one line and exits 1. Anything else that escapes is a bug in modelkin and
keeps its traceback.

Each domain error also derives from the builtin it refines (``ValueError`` for bad values,
``FileNotFoundError`` for missing files), so that library callers can catch either.
"""

from __future__ import annotations


class ModelkinError(Exception):
    """A problem with what modelkin was given (config, files, arguments, model ids)."""


class InputError(ModelkinError, ValueError):
    """A value modelkin cannot work with: a bad argument, setting or file content."""


class MissingFileError(ModelkinError, FileNotFoundError):
    """A file modelkin needs does not exist; the message says which command makes it."""
