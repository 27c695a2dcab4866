"""Exceptions raised by edgecv, each mapped to a documented CLI exit code."""

from __future__ import annotations


class EdgecvError(Exception):
    """Base class: a problem the user can fix, reported as one clear line."""

    exit_code = 1


class UnknownNameError(EdgecvError, KeyError):
    """An unknown model, target or option value; the message lists close matches."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidInputError(EdgecvError, ValueError):
    """An input (image, file, shape, option) that cannot be used."""

    exit_code = 3


class ArtifactError(EdgecvError):
    """A missing, corrupted or unsupported compiled artifact."""

    exit_code = 4


class ParityError(EdgecvError):
    """Two implementations that must agree did not (export or compile check)."""

    exit_code = 5
