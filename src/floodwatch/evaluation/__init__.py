"""floodwatch stage package."""
