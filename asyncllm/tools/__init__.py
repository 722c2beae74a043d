"""Typed tools and structured output.

- :class:`Tool` (or the :func:`tool` decorator): a tool from a function's signature, type
  hints and docstring, or from a pydantic model. Pass tools as ``tools=[...]`` to
  ``Client.complete``/``stream``; ``response.tool_calls`` then carry validated arguments.
- :func:`run_tools`: run a turn's tool calls concurrently, each under a timeout, failures
  returned to the model as tool errors; :func:`tool_result` builds one tool message.
- :func:`run_agent`: the small loop (call, run tools, repeat; ``max_turns``).
- :func:`stream_events`: typed stream events, alike for every provider and backend.
- :func:`response_format_for` / :func:`strict_schema`: the structured-output request that
  ``response_format=SomeModel`` sends.

This package needs pydantic (a dependency of asyncllm), imported only when it is used.
"""

from __future__ import annotations

from .._exceptions import MaxTurnsExceeded, StructuredOutputError
from ._events import (
    StreamEvent,
    StreamFinished,
    TextDelta,
    ToolCallReady,
    ToolCallStarted,
    stream_events,
)
from ._run import DEFAULT_TOOL_TIMEOUT, AgentRun, run_agent, run_tools, tool_result
from ._schema import strict_schema
from ._structured import parse_output, response_format_for
from ._tool import Tool, tool

# Seams for the client layer (asyncllm/_client.py, _build.py, _typed.py): a sibling
# enters a room through its package face only (the import-linter contract in
# pyproject.toml). Not in ``__all__``: not part of the user API, no stability promise.
# isort: off
from ._structured import (
    cached_response_format as cached_response_format,
    retry_prompt as retry_prompt,
)
from ._tool import as_spec as as_spec
# isort: on

#: The seams above, by name (not in ``__all__``; ``tests/test_architecture.py`` checks both).
__seams__ = (
    "as_spec",
    "cached_response_format",
    "retry_prompt",
)

__all__ = [
    "DEFAULT_TOOL_TIMEOUT",
    "AgentRun",
    "MaxTurnsExceeded",
    "StreamEvent",
    "StreamFinished",
    "StructuredOutputError",
    "TextDelta",
    "Tool",
    "ToolCallReady",
    "ToolCallStarted",
    "parse_output",
    "response_format_for",
    "run_agent",
    "run_tools",
    "stream_events",
    "strict_schema",
    "tool",
    "tool_result",
]
