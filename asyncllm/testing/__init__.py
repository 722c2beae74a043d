"""Test helpers shipped with asyncllm: a scripted fake provider, latency distributions, and
an HTTP simulator of the OpenAI and Anthropic APIs (:class:`Simulator`), whose answers can be
scripted turn by turn (:class:`Turn`: text, JSON, tool calls) to test agent loops offline.

Importing this package registers the ``"fake"`` provider kind, so ``Client("fake:my-model")``
builds a :class:`FakeProvider` (the drivers in ``providers/`` know nothing of test doubles).
"""

from __future__ import annotations

from ..providers import register as _register
from ._fake import FakeProvider, FakeReply
from ._latency import Constant, Latency, LatencyLike, Mixture, heavy_tail
from ._sim_faults import Fault
from ._sim_script import Turn
from ._sim_stats import RecordedRequest, SimulatorStats
from ._simulator import Simulator

_register("fake", FakeProvider)

__all__ = [
    "Constant",
    "FakeProvider",
    "FakeReply",
    "Fault",
    "Latency",
    "LatencyLike",
    "Mixture",
    "RecordedRequest",
    "Simulator",
    "SimulatorStats",
    "Turn",
    "heavy_tail",
]
