"""``from imgsearch.client import Client``: the original ImgSearch import path."""

from isearchd.client import Client

__all__ = ["Client"]
