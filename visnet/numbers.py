"""Numbers typed by people (form fields, URL parts, CLI flags, settings), read from ASCII digits only.

``int()`` and ``float()`` also read other scripts' digits ("٣", "３" → 3) and underscores ("1_000"),
while ``str.isdigit()`` accepts "²", which ``int()`` refuses: a check with one and a conversion with
the other disagree, and a number can arrive in a form no one meant. Every number from outside is read
here instead; callers check the range and word the error for their field.
"""
import argparse
import re

_WHOLE = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_SPACE = " \t\r\n"
# Far more digits than any limit here has; the bound keeps int() from meeting its own digit limit.
_MAX_DIGITS = 30


def parse_whole_number(text) -> int:
    """``"12"``, ``" 12 "`` or ``"-1"`` → int; anything else (other digits, signs, "1_0", "1e3",
    "12.0", bools) raises ValueError. An int passes through (defaults and JSON values)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    value = text.strip(_SPACE) if isinstance(text, str) else None
    if value is None or len(value) > _MAX_DIGITS or not _WHOLE.fullmatch(value):
        raise ValueError(f"{str(text)[:40]!r} is not a whole number")
    return int(value)


def parse_decimal(text) -> float:
    """``"1.5"``, ``".5"``, ``"2e-3"`` → float, from ASCII digits only; raises ValueError otherwise
    ("nan", "inf", other scripts' digits). An int or float passes through."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    value = text.strip(_SPACE) if isinstance(text, str) else None
    if value is None or len(value) > _MAX_DIGITS or not _DECIMAL.fullmatch(value):
        raise ValueError(f"{str(text)[:40]!r} is not a number")
    return float(value)


def non_negative_argument(text: str) -> int:
    """argparse ``type=`` for counts and sizes: a whole number of 0 or more."""
    try:
        value = parse_whole_number(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def positive_argument(text: str) -> int:
    """argparse ``type=`` for a size that must be 1 or more."""
    value = non_negative_argument(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def decimal_argument(text: str) -> float:
    """argparse ``type=`` for a number such as hours: ASCII digits, a point, an exponent."""
    try:
        return parse_decimal(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
