"""Monitoring fixtures live in helper modules (importable by the tests, unlike a conftest)."""
from monitoring_helpers import file_server, pair, predictor, receiver  # noqa: F401
from postgres_helpers import db_url, pg_server, pg_url, store  # noqa: F401
from stac_helpers import stac_api  # noqa: F401
