"""Errors a user fixes by changing their data or their settings; the message says where and what to do.

`vietlegal <command>` prints them as one line and exits 2 (cli.USER_ERRORS), no traceback.
"""


class DataError(ValueError):
    """Data that cannot be used (a split, a corpus, an index, an answers file); the message names file:line."""


class HardwareError(RuntimeError):
    """The hardware cannot run what params.yaml asks for; the message says what to change."""
