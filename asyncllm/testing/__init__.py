"""Test helpers shipped with asyncllm: a scripted fake provider and latency distributions.

The HTTP provider simulator lives here too (``asyncllm.testing.Simulator``).
"""

from __future__ import annotations

from ._fake import FakeProvider, FakeReply
from ._latency import Constant, Latency, Mixture, heavy_tail

__all__ = ["Constant", "FakeProvider", "FakeReply", "Latency", "Mixture", "heavy_tail"]
