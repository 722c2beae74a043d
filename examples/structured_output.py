"""Structured output recipe: ``response_format=`` a pydantic model.

The request asks for the model's strict JSON schema (OpenAI ``json_schema``, Anthropic
``output_config.format``); ``response.parsed`` is the validated instance. An answer that
does not validate raises ``StructuredOutputError`` (with the raw text), or, with
``output_retries=``, is shown back to the model with the validation errors.

Runs on an embedded simulator; set ``ASYNCLLM_PROVIDERS`` to use real providers::

    python examples/structured_output.py
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import anyio
from pydantic import BaseModel, Field

from asyncllm import Client, StructuredOutputError
from asyncllm.providers import OpenAICompatibleProvider
from asyncllm.testing import Simulator, Turn


class LineItem(BaseModel):
    description: str
    amount: float = Field(ge=0)


class Invoice(BaseModel):
    """An invoice extracted from free text."""

    vendor: str
    currency: str = Field(description="ISO 4217 code, e.g. EUR")
    items: list[LineItem]


TEXT = "ACME Corp billed us 120 EUR for hosting and 30 EUR for support."


@contextlib.asynccontextmanager
async def make_client() -> AsyncIterator[tuple[Client, Simulator | None]]:
    specs = os.environ.get("ASYNCLLM_PROVIDERS")
    if specs:
        async with Client(specs.split(","), timeout=120) as client:
            yield client, None
        return
    async with Simulator(output_tokens=12) as sim:
        provider = OpenAICompatibleProvider(
            name="sim", base_url=sim.openai_base_url, model="sim", api_key="not-a-key"
        )
        async with Client(provider, log=False) as client:
            yield client, sim


async def main() -> None:
    async with make_client() as (client, sim):
        # 1. The simulator makes up an answer that fits the schema.
        r = await client.complete(f"Extract the invoice: {TEXT}", response_format=Invoice)
        assert isinstance(r.parsed, Invoice)
        print("parsed:", r.parsed)

        if sim is None:
            return
        # 2. A wrong answer raises, carrying what the model wrote.
        sim.script(Turn.json({"vendor": "ACME", "items": [{"amount": -1}]}))
        try:
            await client.complete(f"Extract the invoice: {TEXT}", response_format=Invoice)
        except StructuredOutputError as exc:
            print("rejected:", exc.raw_text)
            print("because:", "; ".join(exc.errors))

        # 3. With output_retries the model sees its errors and tries again.
        good = {
            "vendor": "ACME Corp",
            "currency": "EUR",
            "items": [
                {"description": "hosting", "amount": 120},
                {"description": "support", "amount": 30},
            ],
        }
        sim.script(Turn.json({"vendor": "ACME"}), Turn.json(good))
        r = await client.complete(
            f"Extract the invoice: {TEXT}", response_format=Invoice, output_retries=1
        )
        print("after one retry:", r.parsed)
        assert r.parsed == Invoice.model_validate(good)


if __name__ == "__main__":
    anyio.run(main)
