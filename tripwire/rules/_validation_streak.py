"""Patience counted in training, not in validations, for the rules that judge validation runs.

A rule that fires after ``patience`` failing validations would fire twice as early on a run that
validates twice per epoch (Lightning ``val_check_interval=0.5``) as on the same run validating
once per epoch: the same training, judged more often. So each validation advances a streak by
the training it stands for,

    weight = min(epochs_since_val, 1)       (1 when the sample does not carry it)

and the rule fires once the streak reaches ``patience``; any validation that clears resets it
(the streak itself: :mod:`tripwire.rules._streak`).
``epochs_since_val`` is the fraction of an epoch trained since the previous validation (see
:data:`tripwire.stats.CATALOGUE`): 0.5 with two validations per epoch, 1 with one. The cap at 1
keeps today's meaning where validation is rarer (every N epochs, or Keras, which does not send
it): one validation, one unit of patience. A validation with no training since the previous one
adds nothing: judging the same model again is no new evidence. Boosted trees have no epochs;
XGBoost sends the rounds since the previous sample times ``eta``, each round adding ``eta`` of a
full-strength tree: at eta 0.05 and a sample every 10 rounds, patience 5 is 100 rounds, about
what ``early_stopping_rounds`` users pick at that rate, and at the default eta 0.3 it is 50.

Example:
    >>> from tripwire.stats import Sample
    >>> half = Sample(50, stats={"val_loss": {None: 1.0}, "epochs_since_val": {None: 0.5}})
    >>> validation_weight(half), validation_weight(Sample(100, stats={"val_loss": {None: 1.0}}))
    (0.5, 1.0)
    >>> from tripwire.rules._streak import advance
    >>> state = {}
    >>> for step in (50, 100, 150, 200):
    ...     streak = advance(state, "over", True, step, weight=validation_weight(half))
    ...     print(streak.length, streak.reached(2))
    0.5 False
    1.0 False
    1.5 False
    2.0 True
    >>> in_a_row(4, 2.0), in_a_row(3, 3.0)
    ('4 validations in a row (2 epochs of training)', '3 validations in a row')
    >>> in_a_row(6, 1.8, "xgboost")
    '6 validations in a row (1.8 rounds x eta)'
"""

from __future__ import annotations

from tripwire.rules._loss_history import finite_scalar
from tripwire.rules._streak import TOLERANCE
from tripwire.stats import CATALOGUE, Need, Sample

#: the statistic that says how much training a validation sample stands for
EPOCHS_SINCE_VAL = Need("epochs_since_val")

def validation_weight(sample: Sample) -> float:
    """The patience a validation sample advances a streak by: its ``epochs_since_val`` within
    [0, 1], or what its absence means (1) when the sample does not carry a finite value."""
    value = finite_scalar(sample, EPOCHS_SINCE_VAL.key)
    if value is None:
        value = CATALOGUE[EPOCHS_SINCE_VAL.stat].absent
    return min(max(value, 0.0), 1.0)


def in_a_row(validations: int, epochs: float, framework: str | None = None) -> str:
    """How long a streak is, for a finding's message: validations, and the training they cover
    when that differs (in epochs; for XGBoost, which has none, in rounds x eta)."""
    text = f"{validations} validation{'s' if validations != 1 else ''} in a row"
    if abs(validations - epochs) > TOLERANCE:
        plural = "s" if abs(epochs - 1) > TOLERANCE else ""
        text += f" ({epochs:.3g} rounds x eta)" if framework == "xgboost" else \
            f" ({epochs:.3g} epoch{plural} of training)"
    return text
