"""The place a GPS position falls in, offline: city, region and country (English names).

Backed by ``reverse-geocode``, which ships GeoNames' populated places (cities of 1,000 people and
more) and answers with the nearest one; no network is ever used. Its table is loaded on the first
look-up (about 2 s and a few tens of MB, once per daemon), so a library without GPS tags never
pays for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    city: str | None
    region: str | None
    country: str | None


class Gazetteer:
    """Nearest populated place for positions; thread-safe, loaded on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._module: Any = None

    def _geocoder(self) -> Any:
        with self._lock:
            if self._module is None:
                import reverse_geocode  # a few MB of data: only when a photo has GPS

                self._module = reverse_geocode
            return self._module

    def places(self, positions: Sequence[tuple[float, float]]) -> list[Place]:
        if not positions:
            return []
        found = self._geocoder().search(list(positions))
        return [
            Place(_name(p.get("city")), _name(p.get("state") or p.get("county")), _name(p.get("country")))
            for p in found
        ]

    def place(self, lat: float, lon: float) -> Place:
        return self.places([(lat, lon)])[0]


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
