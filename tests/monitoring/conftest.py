"""Monitoring fixtures live in monitoring_helpers (importable by the tests, unlike a conftest)."""
from monitoring_helpers import file_server, pair, predictor, receiver  # noqa: F401
