"""``Tool``: a typed tool from a Python function or a pydantic model."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, overload

import anyio
import pydantic

from .._exceptions import ConfigurationError, InvalidRequestError
from .._types import ToolCall
from ._schema import doc_params, function_model

__all__ = ["Tool", "as_spec", "tool"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Tool:
    """A tool the model may call: a name, a description and a pydantic model of its arguments.

    Build one with :meth:`from_function` (or the :func:`tool` decorator) or
    :meth:`from_model`. Pass tools as ``tools=[...]`` to ``Client.complete``/``stream``:
    the request carries their JSON schemas, and ``response.tool_calls`` come back with
    ``parsed`` (the validated arguments) or ``error`` (why they did not validate).

    Args:
        name: The name the model calls (letters, digits, ``_`` and ``-``; at most 64).
        args_model: The pydantic model of the arguments.
        fn: What to run: called with the arguments as keywords (from a function) or with
            the validated model instance (from a model); sync or async. ``None``: a tool
            the model may call but that :func:`~asyncllm.tools.run_tools` cannot run.
        description: What the tool does, for the model.
        strict: Ask OpenAI-format providers for strict argument decoding (the schema must
            then have every property required).
        takes_model: ``fn`` takes the model instance instead of keyword arguments.
    """

    __slots__ = (
        "_spec",
        "args_model",
        "description",
        "fn",
        "name",
        "strict",
        "takes_model",
    )

    def __init__(
        self,
        name: str,
        args_model: type[pydantic.BaseModel],
        fn: Callable[..., Any] | None = None,
        *,
        description: str = "",
        strict: bool = False,
        takes_model: bool = False,
    ) -> None:
        if not _NAME.match(name):
            raise ConfigurationError(f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
        if not (isinstance(args_model, type) and issubclass(args_model, pydantic.BaseModel)):
            raise ConfigurationError(f"tool {name!r}: args_model must be a pydantic model class")
        self.name = name
        self.args_model = args_model
        self.fn = fn
        self.description = description
        self.strict = strict
        self.takes_model = takes_model
        self._spec: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
    ) -> Tool:
        """A tool from a function: its signature and type hints give the schema, its
        docstring the description (the summary) and each parameter's description (the
        Google-style ``Args:`` section)."""
        tool_name = name or fn.__name__
        model, summary = function_model(fn, tool_name)
        return cls(
            tool_name,
            model,
            fn,
            description=summary if description is None else description,
            strict=strict,
        )

    @classmethod
    def from_model(
        cls,
        model: type[pydantic.BaseModel],
        fn: Callable[[Any], Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
    ) -> Tool:
        """A tool whose arguments are ``model``; ``fn`` (optional) receives the instance.

        The name defaults to the model's class name, the description to its docstring.
        """
        summary, _ = doc_params(model.__doc__)
        return cls(
            name or model.__name__,
            model,
            fn,
            description=summary if description is None else description,
            strict=strict,
            takes_model=True,
        )

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments (a fresh copy)."""
        copied: dict[str, Any] = _copy(self._wire_spec()["function"]["parameters"])
        return copied

    def to_spec(self) -> dict[str, Any]:
        """The tool as a request's ``tools`` item (OpenAI shape; drivers translate it).

        A fresh copy each time: change it freely.
        """
        copied: dict[str, Any] = _copy(self._wire_spec())
        return copied

    def _wire_spec(self) -> dict[str, Any]:
        # Built once (and again only if the attributes it depends on change): every request
        # carrying this tool shares it, read-only. Copying it per call cost more than the
        # rest of the typed path together.
        key = (self.name, self.description, self.strict, self.args_model)
        if self._spec is None or self._spec[0] != key:
            schema = self.args_model.model_json_schema()
            schema.pop("title", None)
            if self.strict:
                from ._schema import strict_schema

                schema = strict_schema(schema)
            fn: dict[str, Any] = {"name": self.name, "parameters": schema}
            if self.description:
                fn["description"] = self.description
            if self.strict:
                fn["strict"] = True
            self._spec = (key, {"type": "function", "function": fn})
        return self._spec[1]

    def validate(self, arguments: str | Mapping[str, Any]) -> pydantic.BaseModel:
        """The arguments validated into :attr:`args_model`.

        Raises:
            pydantic.ValidationError: they are not JSON, or do not fit the schema.
        """
        if isinstance(arguments, str):
            return self.args_model.model_validate_json(arguments or "{}")
        return self.args_model.model_validate(arguments)

    def check(self, call: ToolCall) -> ToolCall:
        """``call`` with ``parsed`` set (or ``error`` saying why the arguments are wrong)."""
        try:
            parsed = self.validate(call.arguments)
        except pydantic.ValidationError as exc:
            return ToolCall(call.id, call.name, call.arguments, error=validation_text(exc))
        return ToolCall(call.id, call.name, call.arguments, parsed=parsed)

    async def call(self, args: pydantic.BaseModel) -> Any:
        """Run the tool's function with validated arguments.

        Async functions are awaited (and cancelled with their caller). Sync functions run
        in a worker thread; a thread cannot be interrupted, so a cancelled caller waits for
        it to return: nothing is left running either way.

        Raises:
            ConfigurationError: the tool has no function.
        """
        if self.fn is None:
            raise ConfigurationError(f"tool {self.name!r} has no function to run")
        if self.takes_model:
            bound: Callable[[], Any] = lambda: self.fn(args)  # type: ignore[misc]  # noqa: E731
        else:
            kwargs = {k: getattr(args, k) for k in type(args).model_fields}
            bound = lambda: self.fn(**kwargs)  # type: ignore[misc]  # noqa: E731
        if _is_async(self.fn):
            return await bound()
        result = await anyio.to_thread.run_sync(bound)
        if inspect.isawaitable(result):
            return await result
        return result

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, strict: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Decorator: ``@tool`` or ``@tool(name=..., strict=True)`` turns a function into a
    :class:`Tool` (see :meth:`Tool.from_function`)."""
    if fn is not None:
        return Tool.from_function(fn)

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool.from_function(f, name=name, description=description, strict=strict)

    return wrap


def as_spec(t: object, index: int) -> Mapping[str, Any]:
    """A request's ``tools[index]`` item from a dict, a :class:`Tool` or a function.

    Raises:
        InvalidRequestError: ``t`` is none of those.
    """
    if isinstance(t, Mapping):
        return t
    if isinstance(t, Tool):
        return t._wire_spec()
    if callable(t):
        return Tool.from_function(t)._wire_spec()
    raise InvalidRequestError(
        f"tools[{index}] must be a dict, an asyncllm.tools.Tool or a function, "
        f"got {type(t).__name__}"
    )


def validation_text(exc: pydantic.ValidationError) -> str:
    """A pydantic validation error as short ``field: message`` lines."""
    lines = []
    for e in exc.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"{where}: {e['msg']}")
    return "; ".join(lines)


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an async callable object
    )


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
