"""asyncllm on Ray Data: the batch job fanned out over many actors and machines.

Needs the ``ray`` extra (``pip install 'asyncllm[ray]'``); importing ``asyncllm`` never
imports Ray, only ``import asyncllm.ray`` does.

- :class:`AsyncLLMStage`: a callable class for ``Dataset.map_batches``; one long-lived
  :class:`~asyncllm.Client` per actor, many requests in flight, rows in the batch input
  shapes in, one output row per input row out (errors as rows).
- :func:`process`: a Dataset and a config in, the output Dataset out.
- :func:`prepare_config` / :func:`check_shared`: a ``redis_url`` shares every actor's
  limits, cache and budget; without Redis more than one actor is refused when limits or a
  budget are configured.
- :func:`run_file`: what ``asyncllm run --ray`` does (the local batch's output contract).

See ``docs/ray.md``.
"""

from __future__ import annotations

try:
    import ray.data  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("asyncllm.ray needs Ray Data: pip install 'asyncllm[ray]'") from exc

from ._run import run_file
from ._shared import check_shared, prepare_config
from ._stage import BUDGET_REFUSED, LIMITER_UNAVAILABLE, AsyncLLMStage, process, record_of

__all__ = [
    "BUDGET_REFUSED",
    "LIMITER_UNAVAILABLE",
    "AsyncLLMStage",
    "check_shared",
    "prepare_config",
    "process",
    "record_of",
    "run_file",
]
