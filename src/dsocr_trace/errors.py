"""Errors a user can fix: the CLI prints the message on one line and exits non-zero, no traceback."""


class UserError(Exception):
    """Bad input. The message says what is wrong and what to do instead."""
