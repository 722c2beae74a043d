"""Cost tracking and budgets: what each response cost, and spending limits that
concurrency cannot break.

* :class:`Prices` prices a response from its usage (genai-prices' bundled data plus your
  overrides); pass it as ``Client(pricing=...)``.
* :class:`MemoryBudget` (one process) and :class:`RedisBudget` (shared) enforce
  :class:`SpendLimit` s before each attempt; pass one as ``Client(budget=...)``.
"""

from __future__ import annotations

from ._budget import BudgetBase, MemoryBudget
from ._limit import BudgetAlert, SpendLimit
from ._prices import DEFAULT_MAX_TOKENS, LOCAL_KINDS, ModelPrice, Prices, worst_case
from ._redis_budget import BudgetUnavailable, RedisBudget

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "LOCAL_KINDS",
    "BudgetAlert",
    "BudgetBase",
    "BudgetUnavailable",
    "MemoryBudget",
    "ModelPrice",
    "Prices",
    "RedisBudget",
    "SpendLimit",
    "worst_case",
]
