"""Disaster-risk monitoring: change detection, AOIs and their flood history, STAC watching, alerts, web map."""
from .aoi import add_aoi, record_map_result, record_output_dir
from .change import ChangeResult, detect_change
from .store import Store

__all__ = ["Store", "add_aoi", "record_map_result", "record_output_dir", "detect_change", "ChangeResult",
           "score_change_on_ombria"]


def __getattr__(name):  # scoring pulls in the OMBRIA reader only when asked for
    if name == "score_change_on_ombria":
        from .ombria import score_change_on_ombria

        return score_change_on_ombria
    raise AttributeError(name)
