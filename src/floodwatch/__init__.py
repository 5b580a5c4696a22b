"""floodwatch: flood mapping from Sentinel-1 SAR, end to end."""

__version__ = "0.1.0"
