"""Errors a user can act on.

Every problem with the user's input (paths, sizes, frame counts, files of the wrong
kind) is raised as :class:`InputError` *before* any model is built, with a message
that says what to do. The CLI prints these without a traceback.
"""


class InputError(ValueError):
    """Bad user input: the message says what is wrong and how to fix it."""


class OutputExistsError(InputError):
    """The output file already exists and overwriting was not asked for."""
