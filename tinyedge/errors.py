"""Errors a user can cause and fix: each carries one sentence saying what to do."""

from __future__ import annotations


class TinyedgeError(Exception):
    """A problem the user can fix. The message is one clear sentence; the CLI prints it without a traceback."""

    exit_code = 1


class ValidationFailed(TinyedgeError):
    """The device ran, but its outputs did not agree with the host reference."""

    exit_code = 2


class DeviceError(TinyedgeError):
    """The device could not be reached, stayed silent or answered with an error."""

    exit_code = 3
    status: int | None = None  # the protocol status code the device answered with, when it did
