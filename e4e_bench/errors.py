"""The one error type for mistakes a user can fix; the CLI prints it as one line."""


class E4EBenchError(Exception):
    """Bad input: the message says what is wrong, with which file, and how to fix it."""
