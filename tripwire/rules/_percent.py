"""Percentages in messages that never print a value equal to the limit it broke.

A share of 0.904 against a limit of 0.9 reads "90% (limit 90%)" with whole percents; the
message then contradicts the finding's ``value``. :func:`percent` adds decimals until the two
differ (at most three); a limit alone prints as given (0.905: "90.5%").

Example:
    >>> percent(0.8, 0.5), percent(0.904, 0.9), percent(0.9999, 1.0), percent(0.905), percent(0.5)
    ('80%', '90.4%', '99.99%', '90.5%', '50%')
"""

from __future__ import annotations


def percent(value: float, limit: float | None = None) -> str:
    """``value`` as a percentage: precise enough to differ from ``limit``, or, without one, as set."""
    if limit is None:
        return f"{value * 100:.4g}%"
    for digits in range(4):
        text = f"{value:.{digits}%}"
        if text != f"{limit:.{digits}%}":
            return text
    return text
