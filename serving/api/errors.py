"""422 bodies that can always be written: FastAPI echoes each invalid ``input``, and an input JSON can
carry but a response cannot (``1e400`` parses to ``inf``; a lone surrogate) made the 422 itself a 500."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi.encoders import jsonable_encoder

__all__ = ["json_safe_errors"]


def _writable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        return False
    return True


def json_safe_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """The validation errors, each ``input`` kept only where it can be written back as JSON."""
    out = []
    for error in jsonable_encoder(errors):
        if "input" in error and not _writable(error["input"]):
            error = {k: v for k, v in error.items() if k != "input"}
        out.append(error if _writable(error) else {"loc": error.get("loc"), "msg": "invalid value"})
    return out
