"""Compatibility alias: the original ImgSearch's ``from imgsearch.client import Client``.

The code lives in :mod:`isearchd`; this package only re-exports the documented names.
"""
