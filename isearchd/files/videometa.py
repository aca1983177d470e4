"""What a video's container says of itself: when it was filmed and where (phones' metadata)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["created", "location", "taken"]

_APPLE_DATE = "com.apple.quicktime.creationdate"
_APPLE_PLACE = "com.apple.quicktime.location.ISO6709"
_ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)")


def created(meta: dict[str, str]) -> tuple[datetime | None, bool]:
    """When it was filmed: Apple's local ``creationdate`` (with its offset), else the container's
    ``creation_time`` (UTC). Cameras with an unset clock write 1904/1970: ignored."""
    for key, local in ((_APPLE_DATE, True), ("creation_time", False)):
        raw = meta.get(key)
        if not raw:
            continue
        text = raw.strip().replace("Z", "+00:00")
        text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            continue
        if moment.year < 1990:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment, local
    return None, False


def location(meta: dict[str, str]) -> tuple[float | None, float | None]:
    """The position a phone wrote (ISO 6709, "+38.7223-009.1393+010.000/"), when plausible."""
    raw = meta.get(_APPLE_PLACE) or meta.get("location")
    m = _ISO6709.match(raw or "")
    if m is None:
        return None, None
    lat, lon = float(m.group(1)), float(m.group(2))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None, None
    return lat, lon


def taken(when: datetime | None, local: bool) -> tuple[str, str] | None:
    """``(taken, taken_local)`` as photos store them: ISO 8601 with its offset, and the wall-clock
    time where it was filmed (the container's UTC time shown in this machine's time zone when the
    video does not say its own). ``when``, ``local``: ``created``'s answer."""
    if when is None:
        return None
    moment = when if local else when.astimezone()
    moment = moment.replace(microsecond=0)
    offset = moment.utcoffset() or timedelta(0)
    aware = moment.replace(tzinfo=timezone(offset))
    return aware.isoformat(), aware.replace(tzinfo=None).isoformat()
