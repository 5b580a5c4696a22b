"""`aoi watch --stac FILE` beyond a static catalog: a saved search (FeatureCollection, what `stac-client search
--save` writes), one item's JSON, and the documents it cannot use said as such: a collection of a STAC API
(its items are not linked from it) and JSON that is no STAC object."""
import json

import pytest
from shapely.geometry import box, mapping

from floodwatch.errors import MonitoringError
from floodwatch.monitoring.aoi import add_aoi
from floodwatch.monitoring.geo import to_wgs84
from floodwatch.monitoring.stac import find_items, watch_aoi
from floodwatch.monitoring.store import Store

from monitoring_helpers import ORIGIN, UTM
from stac_helpers import api_items, make_catalog

X0, Y0 = ORIGIN
AOI = to_wgs84(box(X0 + 960, Y0 - 1600, X0 + 1600, Y0 - 960), UTM)


@pytest.fixture
def saved(tmp_path):
    """(a saved search of the catalog's items, absolute hrefs as an API gives them; their collection)."""
    (tmp_path / "stac").mkdir()
    colls, items = api_items(str(make_catalog(tmp_path / "stac")))
    path = tmp_path / "search.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path, items


def test_watch_a_saved_search(tmp_path, saved, predictor):
    path, _ = saved
    with Store(tmp_path / "fw.db") as store:
        add_aoi(store, "mid", mapping(AOI))
        out = watch_aoi(store, "mid", str(path), "s1", predictor, tmp_path / "out", tile=64, overlap=16,
                        progress=False)
        assert [(o.item_id, o.status) for o in out] == [("S1_0", "mapped"), ("S1_1", "mapped")]
        assert [h["scene_id"] for h in store.history("mid")] == ["S1_0", "S1_1"]


def test_one_item_json(tmp_path, saved):
    _, items = saved
    one = tmp_path / "S1_1.json"
    one.write_text(json.dumps(items[1]))
    assert [i.id for i in find_items(str(one), "s1", AOI)] == ["S1_1"]


def test_saved_search_of_other_collections_names_them(tmp_path, saved):
    path, _ = saved
    with pytest.raises(MonitoringError, match=r"^collection: 'sentinel-1-rtc' not found in .*search.json \(its "
                                              r"items are of s1\)$"):
        find_items(str(path), "sentinel-1-rtc", AOI)


def test_collection_of_a_stac_api_says_to_give_the_api_root(tmp_path):
    """A collection document saved from an API links its items as one `items` endpoint, not item by item:
    walked as a static collection it would be an empty watch that exits 0, every time."""
    api = "https://example.test/api/stac/v1"
    coll = {"type": "Collection", "id": "sentinel-1-rtc", "stac_version": "1.0.0", "description": "d",
            "license": "CC-BY-4.0", "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                                               "temporal": {"interval": [["2014-10-10T00:00:00Z", None]]}},
            "links": [{"rel": "items", "href": f"{api}/collections/sentinel-1-rtc/items"},
                      {"rel": "root", "href": f"{api}/"}, {"rel": "parent", "href": f"{api}/"},
                      {"rel": "self", "href": f"{api}/collections/sentinel-1-rtc"}]}
    path = tmp_path / "collection.json"
    path.write_text(json.dumps(coll))
    with pytest.raises(MonitoringError, match=f"is a collection of a STAC API, whose items are not linked from it; "
                                              f"give the API root \\({api}/\\) as `source`$"):
        find_items(str(path), "sentinel-1-rtc", AOI)


def test_json_that_is_no_stac_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[]")
    with pytest.raises(MonitoringError, match=r"cannot read the STAC catalog \(a JSON list or value, not an "
                                              r"object\)"):
        find_items(str(path), "s1", AOI)
