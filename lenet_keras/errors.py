"""Errors the CLI turns into one clear line and exit code 2."""


class BadInput(Exception):
    """The user asked for something that cannot work (unknown name, missing path, ...).

    The message is one line that names the problem and, where possible, the fix.
    """
