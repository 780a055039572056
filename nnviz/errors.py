"""The errors of bad input from a user: :class:`InputError` and its kinds.

Every user error is an :class:`InputError` (a ``ValueError``); the command line prints its
message as one line and exits with status 2. The kinds say what was wrong, so that a caller
can tell them apart; those that name a missing layer or rule are also ``KeyError``s, as a
lookup in a dict would be.
"""


class InputError(ValueError):
    """Bad input from a user (a file, a name, a value): one clear line, no traceback.
    The command line prints its message and exits with status 2."""

    def __str__(self):
        # one message, as given (a KeyError would show its repr)
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UnknownLayer(InputError, KeyError):
    """A layer name, pattern or index that the net does not have."""


class BadTarget(InputError):
    """A target that cannot be parsed, does not exist in the net, or is zero on an image."""


class BadRule(InputError, KeyError):
    """An unknown backward rule or composite, or a rule given for a layer it does not fit."""


class BadFile(InputError):
    """A file that cannot be read: missing, not a regular file, corrupt, or of an unknown
    format."""


class BadOption(InputError):
    """An option value out of its range, or options that do not go together."""


class BadShape(InputError):
    """An input whose shape, dtype or size the net or method cannot take (a class target at a
    size other than the one the fully connected layers were built for, an image smaller than
    a layer's window)."""
