"""How a finding speaks to the user of each framework: what one step is called, and advice in
the framework's own terms.

The framework of a run is the one its callback names when it builds the
:class:`~tripwire.monitor.Monitor`; the engine hands it to every rule
(:attr:`tripwire.rule.Rule.framework`), and the end-of-run summary and the alert lines use it
too, so a run never mixes words. Rules stay framework-free: they pick among texts, they do not
import a framework. ``None`` (a replay of a record, a rule used alone) speaks of steps and gives
the general advice.

Example:
    >>> step_word("xgboost"), step_word("torch"), step_word(None)
    ('round', 'step', 'step')
    >>> for_framework("xgboost", "add dropout or weight decay", xgboost="lower max_depth")
    'lower max_depth'
    >>> for_framework("keras", "add dropout or weight decay", xgboost="lower max_depth")
    'add dropout or weight decay'
"""

from __future__ import annotations

#: what one step of training is called where it is not an optimizer step
_STEP_WORDS = {"xgboost": "round"}


def step_word(framework: str | None) -> str:
    """What one step of training is called under ``framework``: a boosting round for XGBoost, an
    optimizer step elsewhere."""
    return _STEP_WORDS.get(framework or "", "step")


def for_framework(framework: str | None, general: str, **specific: str) -> str:
    """The text for ``framework`` among ``specific`` ones (keyword: framework name), else ``general``."""
    return specific.get(framework or "", general)
