"""argparse types for the connectors' command lines: a number is checked where it is parsed.

A bad size used to reach numpy or a loop far from its argument and end in a traceback
(``--hours -1``: "negative dimensions are not allowed", ``--cadence 0``: ZeroDivisionError), or
to be taken silently (``--speed nan``, a NaN skew bound that every comparison ignores). With
these, argparse refuses it (exit code 2) with what is expected.

>>> whole_number(1)("3"), finite_number("seconds", 0)("2.5")
(3, 2.5)
>>> whole_number(1)("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: must be at least 1, got 0
>>> finite_number("hours", 0, above=True)("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: must be a finite number of hours > 0, got '0'
"""
from __future__ import annotations

import argparse
import math
from typing import Callable


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def finite_number(unit: str, minimum: float, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number of ``unit`` of at least ``minimum`` (more than it with ``above``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, got {text!r}") from None
        # NaN passes no comparison, so it is refused before the bound is checked
        if not math.isfinite(value) or value < minimum or (above and value == minimum):
            raise argparse.ArgumentTypeError(
                f"must be a finite number of {unit} {'>' if above else '>='} {minimum:g}, got {text!r}")
        return value
    return parse


def replay_speed(text: str) -> float | None:
    """An argparse type: a replay's event-time speed-up (``60x``, ``60``; ``max``: None, as fast as it goes)."""
    from connectors.replay.kinesis import parse_speed

    try:
        return parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
