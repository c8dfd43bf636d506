"""422 answers in the shape the OpenAPI document declares for them (FastAPI's ``HTTPValidationError``:
``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``), also for checks made inside a route."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError


def unprocessable(msg: str, *loc: str | int) -> RequestValidationError:
    """``raise unprocessable("end must be after start", "query", "end")``."""
    return RequestValidationError(
        [{"type": "value_error", "loc": loc or ("body",), "msg": msg, "input": None}]
    )


def from_errors(errors: Sequence[Any], *prefix: str | int) -> RequestValidationError:
    """Pydantic errors (``ValidationError.errors()``) under ``prefix`` in ``loc``."""
    return RequestValidationError(
        [{"type": e["type"], "loc": (*prefix, *e["loc"]), "msg": e["msg"], "input": None} for e in errors]
    )
