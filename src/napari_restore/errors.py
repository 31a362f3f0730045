"""Exceptions with messages meant for users (CLI prints them, docks show them)."""


class RestoreInputError(ValueError):
    """Input that cannot be processed; the message says what is wrong and how to fix it."""
