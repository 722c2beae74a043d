"""``python -m asyncllm.cli``: the same as the ``asyncllm`` command."""

from __future__ import annotations

import sys

from ._main import main

sys.exit(main())
