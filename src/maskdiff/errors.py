"""Error types for the project's own input problems.

An :class:`InputError` is something the user can fix (a config key, a data file, a model
directory): the CLI prints its one-line message, which names the key, file or line. Any other
exception is a bug or an environment failure and keeps its traceback.
"""


class InputError(ValueError):
    """Bad user input: config, data files, model directories. The message names where."""
