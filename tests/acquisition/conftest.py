"""Acquisition fixtures: the loopback STAC API and range-capable file server of the monitoring tests
(tests/monitoring/stac_helpers.py, monitoring_helpers.py), reused rather than written twice."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitoring"))  # the helpers import each other by name

from monitoring_helpers import file_server  # noqa: E402,F401
from stac_helpers import stac_api  # noqa: E402,F401
