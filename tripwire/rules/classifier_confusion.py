"""`classifier_confusion`: a class the classifier mostly gets wrong, or mistakes for one other class."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.rules._loss_history import finite_scalar
from tripwire.rules._percent import percent
from tripwire.rules._streak import advance
from tripwire.rules._validation_streak import EPOCHS_SINCE_VAL, validation_weight
from tripwire.stats import Sample


@register
class ClassifierConfusion(Rule):
    """Fire for a class whose validation samples go mostly to one other class, or that is rarely recalled.

    Each sample carrying ``confusion`` is one complete validation run: ``confusion["t,p"]`` is the
    number of validation samples of true class ``t`` predicted as ``p``. For every class ``t``
    with ``n_t = sum_p c[t,p] >= min_samples``:

        recall    = c[t,t] / n_t
        confusion = max_{p != t} c[t,p] / n_t     (the single class it is most mistaken for)

    and the class fires (subject ``t``) when ``confusion > max_off_diag`` or ``recall < min_diag``
    in ``patience`` epochs of validations in a row; otherwise it clears. Each validation counts for
    the fraction of an epoch trained since the previous one, at most 1 (``epochs_since_val``; see
    :mod:`tripwire.rules._validation_streak`): with one validation per epoch or fewer, ``patience``
    counts validations, and validating twice per epoch takes twice as many. Patience keeps the
    first epoch of a model that has not learned anything yet (everything predicted as one class)
    quiet. Normalizing by the true class (rows) makes the check independent of how
    many classes there are. The defaults stay silent on a decent classifier of hard data (recalls
    0.6-0.9, errors spread over several classes, even cat/dog-style pairs at 20-30%) and fire on
    swapped or collapsed classes. SageMaker's Confusion used 0.9 / 0.1, which fires on nearly
    every real classifier.

    Two things keep a model that is still learning from firing. The rule starts judging at the
    first validation whose predictions depend on the true class (a G-test of independence of the
    whole matrix, beyond ``z`` standard deviations; see :func:`dependence_z`): before that the model
    has learned nothing yet (everything predicted as one class, or at random) and that is
    ``underfit``'s business, not a confusion between two classes. And a validation whose
    ``val_loss`` fell by more than ``min_delta`` (relative) since the previous one is progress: every
    streak starts over, so a class is judged on validations where the model stopped improving.
    Measured: a ViT on 4 classes predicts one class for 150 steps, then swings classes between
    validations (a class at 2-9% recall, mostly predicted as a neighbour) while its validation
    loss falls 1.39 -> 0.61; a Keras BatchNorm ResNet's validation loss first rises above its
    start (2.5 -> 3.5, the running statistics lag) with two classes predicted as a third, then
    falls 2.9 -> 0.19 as they separate. Validation labels that contradict the training labels
    make the validation loss rise as the model learns, so they are judged at once.

    Two more things keep an early or small validation from firing. A class still being learned (its
    recall rose by more than ``z`` standard errors since it began failing) is not judged failing,
    and its streak starts over; and a share counts only when it lies beyond its limit by ``z`` standard errors of a
    share of ``n_t`` samples at that limit (``sqrt(limit * (1 - limit) / n_t)``): with 30 samples
    of a class, recall must be under 0.05 rather than 0.2. Swapped or collapsed classes (recall
    ~0, a stable confusion) are far beyond both.

    Args:
        max_off_diag: largest share of a class's samples predicted as one other class. Defaults to 0.5.
        min_diag: smallest acceptable recall of a class. Defaults to 0.2.
        min_samples: validation samples a class needs before it is judged. Defaults to 30.
        patience: epochs of validations in a row a class must fail before firing (a validation
            counts for the epochs trained since the previous one, at most 1). Defaults to 2.
        z: standard errors a share must lie beyond its limit, a rise of recall that counts as
            learning, and the distance from independent predictions that counts as separating classes. Defaults to 2.
        min_delta: relative fall of ``val_loss`` since the previous validation that counts as still
            learning (formerly ``delta``). Defaults to 0.01.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = ClassifierConfusion("classifier_confusion")
        >>> swapped = {"0,0": 50.0, "1,2": 48.0, "1,1": 2.0, "2,1": 50.0}
        >>> [(v.subject, v.fired) for v in rule.check(Sample(100, stats={"confusion": swapped}))]
        [('0', False), ('1', False), ('2', False)]
        >>> [(v.subject, v.fired) for v in rule.check(Sample(200, stats={"confusion": swapped}))]
        [('0', False), ('1', True), ('2', True)]
        >>> at_chance = {"0,0": 50.0, "1,0": 50.0, "2,0": 50.0}  # everything predicted as class 0
        >>> fresh = ClassifierConfusion("classifier_confusion")
        >>> [[v.fired for v in fresh.check(Sample(s, stats={"confusion": at_chance}))] for s in (100, 200)]
        [[], []]
    """

    kind = "classifier_confusion"
    summary = "a class predicted as one other class > max_off_diag of the time, or its recall < min_diag"
    rearm_after = 1  # patience already spaces its findings: epochs of validations over the limit
    limits: ClassVar[tuple[Limit, ...]] = (
        Limit("max_off_diag", "upper", "linear"),
        Limit("min_diag", "lower", "linear"),
    )

    class Params(RuleParams):
        """Parameters of `classifier_confusion`."""

        renamed: ClassVar[dict[str, str]] = {"delta": "min_delta"}
        max_off_diag: float = Field(0.5, gt=0, le=1, description="largest share of a class's validation "
                                                                 "samples predicted as one other class")
        min_diag: float = Field(0.2, ge=0, le=1, description="smallest acceptable recall of a class")
        min_samples: int = Field(30, ge=1, description="validation samples a class needs before it is judged")
        patience: int = Field(2, ge=1, description="validations in a row a class must fail before firing, "
                                                   "counted in epochs: a validation counts for the epochs trained "
                                                   "since the previous one, at most 1 (0.5 each when validating "
                                                   "twice per epoch)")
        z: float = Field(2.0, ge=0, description="standard errors a share must lie beyond its limit (validation "
                                                "noise), a rise of recall that counts as still learning, "
                                                "and the distance from class-independent predictions that counts "
                                                "as separating classes")
        min_delta: float = Field(0.01, ge=0, description="relative fall of val_loss since the previous "
                                                         "validation that counts as still learning (every streak "
                                                         "starts over)")

    def initial_state(self) -> dict[str, Any]:
        return {"failing": {}, "recall": {}, "separating": False, "last_val": None}

    def needs(self) -> list[Need]:
        return [Need("confusion"), Need("val_loss"), EPOCHS_SINCE_VAL]

    def check(self, sample: Sample) -> list[Verdict]:
        series = sample.series("confusion")
        if series is None:
            return []
        rows = _rows(series)
        p = self.params
        improving = self._val_improved(sample)
        if not self.state.get("separating"):
            self.state["separating"] = dependence_z(rows) > p.z
            if not self.state["separating"]:
                return []
        if improving:
            self.state["failing"].clear()
            self.state.setdefault("recall", {}).clear()
        weight = validation_weight(sample)
        out = []
        for t in sorted(rows, key=_class_order):
            row = rows[t]
            n = sum(row.values())
            if n < p.min_samples:
                continue
            recall = row.get(t, 0.0) / n
            others = {q: c for q, c in row.items() if q != t}
            worst = max(others, key=others.__getitem__, default=None)
            share = others[worst] / n if worst is not None else 0.0
            failing, started = self.state["failing"], self.state.setdefault("recall", {})
            confused = share - p.max_off_diag > p.z * _standard_error(p.max_off_diag, n)
            unrecalled = p.min_diag - recall > p.z * _standard_error(p.min_diag, n)
            before = started.get(t)  # the recall when this class began failing
            learning = (before is not None
                        and recall - before > p.z * _standard_error((recall + before) / 2, n) * 2 ** 0.5)
            fails = (confused or unrecalled) and not learning and not improving
            if fails:
                started.setdefault(t, recall)
            else:
                started.pop(t, None)
            if not advance(failing, t, fails, sample.step, weight).reached(p.patience):
                out.append(self.clear(t))
                continue
            why = (f"{percent(share, p.max_off_diag)} of them predicted as class {worst} (limit "
                   f"{percent(p.max_off_diag)})" if confused else f"recall {percent(recall, p.min_diag)} < "
                   f"{percent(p.min_diag)}")
            top = f"; most often mistaken for class {worst} ({share:.0%})" if not confused else ""
            out.append(self.fire(
                t, value=share if confused else recall,
                threshold=p.max_off_diag if confused else p.min_diag,
                message=f"class {t}: recall {recall:.0%} on {n:.0f} validation samples at step {sample.step}, "
                        f"{why}{top}",
                suggestion=f"if class {t} and class {worst} look swapped, check the label mapping (label encoder, "
                           f"class-index order of the dataset vs the model's outputs); otherwise look at examples "
                           f"of class {t} next to class {worst}, and add data, augmentation or a class weight "
                           f"for class {t}",
                recall=recall, confused_with=worst, confused_share=share, samples=n, row=dict(row)))
        return out


    def _val_improved(self, sample: Sample) -> bool:
        """Record the sample's ``val_loss``; True when it fell by ``min_delta`` since the previous one."""
        val = finite_scalar(sample, "val_loss")
        if val is None:
            return False
        last, self.state["last_val"] = self.state.get("last_val"), val
        return last is not None and val < last - self.params.min_delta * abs(last)


def dependence_z(rows: dict[str, dict[str, float]]) -> float:
    """How far a confusion matrix is from predictions independent of the true class, in standard
    deviations (the G-test of independence, Wilson-Hilferty's normal approximation of chi-square).

    ``G = 2 sum c[t,p] ln(c[t,p] n / (n_t n_p))`` is chi-square with ``(rows-1)(cols-1)`` degrees
    of freedom when the predictions ignore the true class. Unlike accuracy or Cohen's kappa it
    does not care which class is predicted, only that the prediction carries information: two
    swapped classes are far from independent although every one of them is wrong.

    Example:
        >>> dependence_z({"0": {"0": 50.0}, "1": {"0": 50.0}})  # everything predicted as class 0
        0.0
        >>> dependence_z({"0": {"1": 50.0}, "1": {"0": 50.0}}) > 8  # swapped: wrong, yet informative
        True
        >>> round(dependence_z({"0": {"0": 26.0, "1": 24.0}, "1": {"0": 24.0, "1": 26.0}}), 1)  # a coin
        -0.5
    """
    n = sum(sum(row.values()) for row in rows.values())
    predicted: dict[str, float] = {}
    for row in rows.values():
        for q, c in row.items():
            predicted[q] = predicted.get(q, 0.0) + c
    true_classes = sum(1 for row in rows.values() if sum(row.values()) > 0)
    predicted_classes = sum(1 for c in predicted.values() if c > 0)
    df = (true_classes - 1) * (predicted_classes - 1)
    if n <= 0 or df <= 0:
        return 0.0
    g = 2 * sum(c * math.log(c * n / (sum(row.values()) * predicted[q]))
                for row in rows.values() for q, c in row.items() if c > 0)
    k = 2 / (9 * df)
    return ((max(g, 0.0) / df) ** (1 / 3) - (1 - k)) / math.sqrt(k)


def _standard_error(share: float, n: float) -> float:
    """Standard error of a share measured on ``n`` samples when its true value is ``share`` (0 for
    a limit outside [0, 1], which ``tripwire calibrate`` tries while it searches).

    Example:
        >>> _standard_error(0.5, 100), _standard_error(1.2, 100)
        (0.05, 0.0)
    """
    return max(share * (1 - share), 0.0) ** 0.5 / n**0.5 if n > 0 else float("inf")


def _rows(series: dict[str | None, float]) -> dict[str, dict[str, float]]:
    """``{"t,p": count}`` as ``{t: {p: count}}``."""
    rows: dict[str, dict[str, float]] = {}
    for subject, count in series.items():
        t, sep, pred = str(subject).partition(",")
        if not sep:
            raise ValueError(f"confusion subject must be 'true,predicted', got {subject!r}")
        rows.setdefault(t.strip(), {})[pred.strip()] = float(count)
    return rows


def _class_order(name: str) -> tuple[int, int | str]:
    """Numeric class ids in numeric order, then names."""
    return (0, int(name)) if name.lstrip("-").isdigit() else (1, name)
