"""The monitoring web map (FastAPI + bundled Leaflet)."""
from .app import create_app, serve

__all__ = ["create_app", "serve"]
