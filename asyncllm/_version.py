"""The package version and the ``User-Agent`` every driver sends (one place for both)."""

from __future__ import annotations

__all__ = ["USER_AGENT", "__version__"]

__version__ = "0.1.0"

#: Sent by every driver on both backends (the SDK backends override the SDK's own), so a
#: provider sees one client whichever backend is used.
USER_AGENT = f"asyncllm/{__version__}"
