"""Exception classes. Every error a user can cause is one of these, and the CLI prints it as one line."""
from __future__ import annotations

import contextlib
from typing import Iterator


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


class AcquisitionError(FloodwatchError):
    """Searching a STAC catalog or reading its Sentinel-1 assets failed."""


class NoItemsError(AcquisitionError):
    """The search found no usable Sentinel-1 item over the AOI in the time range."""


class AccessError(AcquisitionError):
    """The catalog or its assets refused access (401/403/409): a token or an account is missing."""


class RateLimitError(AcquisitionError):
    """The catalog kept answering 429 Too Many Requests after retries with back-off."""


class CoverageError(AcquisitionError):
    """The items of one date cover less of the AOI than asked for."""


class UnitsError(AcquisitionError):
    """Pixel values that are not backscatter floodwatch can map (e.g. uncalibrated GRD digital numbers)."""


class ModelError(FloodwatchError):
    """An unknown model name, a bad model card, or a model download that failed or did not verify."""


class NoDefaultModelError(ModelError):
    """No model given and no default model installed."""


@contextlib.contextmanager
def data_errors_of(field: str) -> Iterator[None]:
    """DataErrors raised inside start with `field` (the argument the data came from), as InvalidArgumentErrors
    do, so that the CLI names its flag: a URL or a public layer's tile alone does not say which option it was."""
    try:
        yield
    except DataError as exc:
        if not str(exc).startswith(f"{field}:"):
            exc.args = (f"{field}: {exc}",)  # the same exception, so a caller catching a subclass still does
        raise
