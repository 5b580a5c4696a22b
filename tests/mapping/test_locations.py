"""Where scenes come from and maps go: path resolution for cluster workers, URL handling."""
from __future__ import annotations

from pathlib import Path

import pytest

from floodwatch.errors import DataError
from floodwatch.mapping.locations import (input_stem, is_remote_input, is_remote_output, output_names,
                                          resolve_input, resolve_output)


def test_local_paths_become_absolute_and_urls_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_input("s2/a.tif") == str(tmp_path / "s2" / "a.tif")
    assert resolve_input(f"file://{tmp_path}/b.tif") == str(tmp_path / "b.tif")
    for url in ("https://example.com/cog/S1A_x.tif?sig=1", "s3://bucket/k/a.tif", "gs://b/a.tif"):
        assert is_remote_input(url) and resolve_input(url) == url
    assert not is_remote_input("s2/a.tif") and not is_remote_input(Path("/x/a.tif"))


def test_stems_of_paths_and_urls():
    assert input_stem("/data/S1A_IW_GRDH.tif") == "S1A_IW_GRDH"
    assert input_stem("https://h/cogs/S1A_IW%20x.tif?token=abc") == "S1A_IW x"
    assert input_stem("s3://bucket/a/b/scene.tiff") == "scene"


def test_outputs_file_urls_are_local_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_output("maps") == str(tmp_path / "maps")
    assert resolve_output(f"file://{tmp_path}/m") == str(tmp_path / "m") and not is_remote_output("file:///x")
    assert is_remote_output("s3://b/maps/") and resolve_output("s3://b/maps/") == "s3://b/maps"
    assert is_remote_output("memory://maps")


def test_output_names_tell_same_named_scenes_apart_by_their_folders():
    # fetch writes <date>/scene.tif: the dates name the maps; a stem given once keeps its plain name
    assert output_names(["s1/2024-05-01/scene.tif", "s1/2024-05-13/scene.tif", "other/b.tif"]) == \
        ["2024-05-01/scene", "2024-05-13/scene", "b"]
    assert output_names(["/x/a/2024/scene.tif", "/y/b/2024/scene.tif", "s3://bk/2024/scene.tif"]) == \
        ["a/2024/scene", "b/2024/scene", "2024/scene"]  # a URL's path: the bucket is not a folder
    assert output_names(["/w/a.tif", "https://h/c/a.tif?sig=1"]) == ["w/a", "c/a"]
    assert output_names(["t/x.tif", "t/x.tiff"]) == ["x_tif", "x_tiff"]  # two files, one stem
    # the VV file of a _vv/_vh pair names the pair; beside a stacked x.tif the pair keeps its VV file's name
    assert output_names(["t/x_vv.tif", "u/y_VV.TIF", "t/z_vv.tif"], paired=[True, True, False]) == ["x", "y", "z_vv"]
    assert output_names(["t/x_vv.tif", "t/x.tif"], paired=[True, False]) == ["x_vv", "x"]
    # and the folders still tell such scenes apart
    assert output_names(["/d1/a.tif", "/d1/a_vv.tif", "/d2/a.tif", "/d2/a_vv.tif"], paired=[False, True] * 2) == \
        ["d1/a", "d1/a_vv", "d2/a", "d2/a_vv"]
    assert output_names(["/d1/x.tif", "/d1/x.tiff", "/d2/x.tif"]) == ["x_tif", "x_tiff", "x"]  # already apart
    with pytest.raises(DataError, match=r"s3://b1/a.tif: its map would be written over s3://b2/a.tif's"):
        output_names(["s3://b1/a.tif", "s3://b2/a.tif"])  # one path in two buckets: no folder tells them apart
    with pytest.raises(DataError, match="given twice"):
        output_names(["s1/a.tif", "s1/a.tif"])


def test_output_names_never_lead_out_of_the_output_folder(tmp_path, monkeypatch):
    (tmp_path / "s1" / "d2").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "s1" / "d2")
    names = output_names(["../../scene.tif", "scene.tif"])
    assert names == [f"{tmp_path.name}/scene", "d2/scene"] and not any(".." in n for n in names)
    with pytest.raises(DataError, match="given twice"):  # one file, two spellings
        output_names(["scene.tif", "./../d2/scene.tif"])
