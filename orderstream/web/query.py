"""Query-string parameters, checked: a bad value is a 400 that says what is allowed."""

from __future__ import annotations

from faust.web import Request
from faust.web.exceptions import ValidationError


def number(request: Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also refuses nan
        raise ValidationError(f"{name} must be a number from {low:g} to {high:g}, not {raw!r}")
    return value


def integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = number(request, name, default, low, high)
    if value != int(value):
        raise ValidationError(f"{name} must be a whole number from {low} to {high}")
    return int(value)
