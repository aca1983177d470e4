"""ImgSearch: self-hosted image search daemon.

``isearchd.Client`` is the Python client (loaded on first use, so ``import isearchd`` stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from isearchd.version import __version__

if TYPE_CHECKING:
    from isearchd.client import Client

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from isearchd.client import Client

        return Client
    raise AttributeError(f"module 'isearchd' has no attribute {name!r}")
