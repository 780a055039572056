"""The one error type for bad input from a user."""


class InputError(ValueError):
    """Bad input from a user (a file, a name, a value): one clear line, no traceback.
    The command line prints its message and exits with status 2."""
