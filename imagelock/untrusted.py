"""Reading data that nothing has verified yet: whatever it holds, malformed input is a ValueError."""

from __future__ import annotations

import json
from typing import Any


def load_json(data: bytes | str) -> Any:
    """``json.loads``; JSON nested too deeply for the parser is a ValueError like any other malformed JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
