"""The CLI's configuration: the batch run configuration (:mod:`asyncllm.batch`).

Kept as an import path for existing code; ``docs/batch.md`` documents every key.
"""

from __future__ import annotations

from ..batch import RunConfig, build_client, load_config, parse_config

__all__ = ["RunConfig", "build_client", "load_config", "parse_config"]
