"""Exception classes. Every error a user can cause is one of these, and the CLI prints it as one line."""


class FloodwatchError(Exception):
    """Base class: the message names the file or field and what is wrong."""


class InvalidArgumentError(FloodwatchError, ValueError):
    """A function argument (or the option behind it) with a value or name the function does not take; the
    message starts with the parameter's name, which the CLI may map to its flag."""


class DataError(FloodwatchError):
    """Unreadable, corrupt, missing or inconsistent input data."""


class LayoutError(DataError):
    """A folder whose layout is not one floodwatch knows (or is empty)."""


class SpecError(FloodwatchError):
    """An invalid spec file or field."""


class CheckpointError(FloodwatchError):
    """A file that is not a floodwatch checkpoint, or one that does not fit the data."""


class ExportError(FloodwatchError):
    """Export failed, including a parity check beyond tolerance."""


class ServingError(FloodwatchError):
    """Triton server or client problems (not running, model not ready, bad request)."""


class MonitoringError(FloodwatchError):
    """AOI store, STAC, alert or web problems."""
