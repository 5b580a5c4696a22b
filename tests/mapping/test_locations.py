"""Where scenes come from and maps go: path resolution for cluster workers, URL handling."""
from __future__ import annotations

from pathlib import Path

from floodwatch.mapping.locations import (input_stem, is_remote_input, is_remote_output, resolve_input,
                                          resolve_output)


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
