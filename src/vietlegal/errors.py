"""Every error a user fixes by changing their data, their settings or their machine: one module, one base.

`vietlegal <command>` catches `UserError` and prints its message as one line (exit 2), no traceback;
anything else is a bug and keeps its traceback. Each message says where (file:line, section.key,
parameter) and what to do.
"""


class UserError(Exception):
    """Base of every user-fixable error."""


class ConfigError(UserError, ValueError):
    """A params file, a section or a command-line value that cannot be used."""


class DataError(UserError, ValueError):
    """Data that cannot be used (a split, a corpus, an index, an answers file); the message names file:line."""


class ChatError(UserError, ValueError):
    """A conversation or chat template that cannot be rendered; the message starts with the field."""


class GenerationError(UserError, ValueError):
    """A sampling request that cannot run on the model; the message starts with the field."""


class PredictionsError(UserError, ValueError):
    """A predictions file `vietlegal score` cannot read; the message names file:line."""


class BaseModelError(UserError, RuntimeError):
    """The base model cannot be resolved or loaded (gated, missing, offline)."""


class AdapterError(UserError, RuntimeError):
    """An adapter directory that is missing, incomplete or unservable."""


class AdapterIncomplete(AdapterError):
    """An adapter directory still being written (a copy or `dvc pull` in progress): try again later."""


class HardwareError(UserError, RuntimeError):
    """The hardware cannot run what params.yaml asks for; the message says what to change."""


class RemoteError(UserError):
    """A fault of the DVC remote or of this machine's settings for it."""


class ExportError(UserError, RuntimeError):
    """The export stage cannot build llama.cpp, convert or quantise the model; the message says what to do."""
