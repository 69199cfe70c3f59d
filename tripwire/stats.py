"""The statistics vocabulary shared by rules (which declare what they need) and collectors
(which compute exactly that, on the device, on sampled steps).

A statistic is a named series of scalars, one per *subject* (a parameter, a layer, a class,
a feature, or ``None`` for a run-wide value). A :class:`Need` names one statistic plus the
options that change how it is computed (for example the inactivity level of a dead ReLU), and
its :attr:`Need.key` is the series name in a :class:`Sample` and in the run record.

Example:
    >>> need = Need("act_dead_frac", (("inactive_below", 0.01),))
    >>> need.key
    'act_dead_frac[inactive_below=0.01]'
    >>> s = Sample(step=10, epoch=0, stats={"loss": {None: 0.7}})
    >>> s.scalar("loss"), s.scalar("val_loss")
    (0.7, None)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Reduce = Literal["same", "sum", "mean", "max", "min"]


@dataclass(frozen=True)
class StatInfo:
    """How a statistic is computed and combined across ranks.

    ``reduce`` is the collective used on the packed vector in distributed runs: ``same`` for
    values every rank already agrees on (DDP-averaged gradients, replicated weights), ``sum`` for
    counts, ``mean``/``max``/``min`` otherwise. ``per`` says what a subject is.
    """

    reduce: Reduce
    per: str
    doc: str


#: Every built-in statistic. Collectors compute the subset the enabled rules need.
CATALOGUE: dict[str, StatInfo] = {
    # losses
    "loss": StatInfo("mean", "run", "mean training loss over the steps since the previous sample"),
    "val_loss": StatInfo("mean", "run", "validation loss at the end of a validation run"),
    "epochs_since_val": StatInfo("same", "run", "epochs of training since the previous validation (or the start), "
                                                "in the sample of a validation run: 0.5 when validating twice per "
                                                "epoch; for XGBoost the rounds since the previous sample times eta "
                                                "(a round adds eta of a full-strength tree); absent where it is 1 "
                                                "by construction (Keras validates at epoch ends) or the epoch "
                                                "length is unknown (an iterable dataset), which the rules read as 1"),
    "loss_nonfinite": StatInfo("sum", "run", "training steps since the previous sample whose loss was NaN/Inf"),
    # gradients (taken unscaled, before clipping, once per optimizer step)
    "grad_norm": StatInfo("same", "parameter", "L2 norm of the gradient"),
    "grad_abs_mean": StatInfo("same", "parameter", "mean absolute gradient"),
    "grad_global_norm": StatInfo("same", "run", "L2 norm over all gradients"),
    "grad_nonfinite": StatInfo("max", "run", "1 if any gradient element is NaN/Inf (AMP skip steps excluded)"),
    "grad_zero_frac": StatInfo("same", "parameter", "share of exactly-zero gradient elements"),
    "grad_var": StatInfo("same", "parameter", "variance of the gradient elements"),
    "amp_skipped": StatInfo("max", "run", "1 if the loss scaler skipped this optimizer step"),
    "lr": StatInfo("max", "run", "largest learning rate of the optimizers' parameter groups at the sampled step"),
    # weights
    "weight_norm": StatInfo("same", "parameter", "L2 norm of the parameter"),
    "weight_nonfinite": StatInfo("max", "run", "1 if any parameter element is NaN/Inf"),
    "weight_zero_frac": StatInfo("same", "parameter", "share of exactly-zero parameter elements"),
    "weight_var": StatInfo("same", "parameter", "variance of the parameter elements"),
    "param_ndim": StatInfo("same", "parameter", "dimensions of a trainable parameter (1: a bias or a "
                                              "normalization scale/shift); sent once, with the first sample"),
    "update_ratio": StatInfo("same", "parameter", "||w_after - w_before|| / ||w_before|| over one optimizer step"),
    "weight_unchanged": StatInfo("same", "parameter",
                                 "1 if allclose(w, w at the previous sample; options rtol, atol) else 0"),
    "init_weight_gain": StatInfo("same", "parameter",
                                 "std(w) * sqrt(fan_in) of a weight matrix/kernel before training"),
    "init_identical_rows": StatInfo("same", "parameter",
                                    "share of output units whose incoming weights equal the mean row, before training"),
    # activations (forward hooks on ReLU-family / tanh / sigmoid modules)
    "act_dead_frac": StatInfo("mean", "layer", "share of a ReLU layer's units active in fewer than "
                                               "`inactive_below` of the samples"),
    "act_tanh_sat_frac": StatInfo("mean", "layer", "share of a tanh layer's units with |y| >= `level` in at "
                                                   "least `share` of the samples"),
    "act_sigmoid_sat_frac": StatInfo("mean", "layer", "share of a sigmoid layer's units with y <= 1-`level` or "
                                                      "y >= `level` in at least `share` of the samples"),
    "act_zero_frac": StatInfo("mean", "layer", "share of exactly-zero activation elements"),
    "act_var": StatInfo("mean", "layer", "variance of the activation elements"),
    # data
    "label_count": StatInfo("sum", "class", "training labels seen since the previous sample, per class"),
    "input_count": StatInfo("sum", "feature", "input values seen since the previous sample, per feature"),
    "input_sum": StatInfo("sum", "feature", "sum of input values, per feature"),
    "input_sumsq": StatInfo("sum", "feature", "sum of squared input values, per feature"),
    "input_min": StatInfo("min", "feature", "smallest input value, per feature"),
    "input_max": StatInfo("max", "feature", "largest input value, per feature"),
    "token_count": StatInfo("sum", "run", "occurrences of token id `token` in integer inputs"),
    "token_total": StatInfo("sum", "run", "integer input elements seen"),
    "confusion": StatInfo("sum", "class pair", "validation samples of true class t predicted as p; subject 't,p'"),
    # boosted trees
    "tree_depth": StatInfo("same", "run", "deepest tree added in the round"),
    "feature_importance": StatInfo("same", "feature", "normalized total gain (sums to 1)"),
    "feature_chances": StatInfo("same", "run", "splits so far at which each feature was a candidate, on average "
                                               "(splits x the colsample fractions)"),
}


def pooled_map(shape: tuple[int | None, ...], unit_axis: int) -> bool:
    """Whether an activation of this shape is a globally pooled map, ``(batch, C, 1, 1)`` or
    ``(batch, 1, 1, C)``: one value per image and unit. A plain ``(batch, units)`` layer is not.

    With :func:`tripwire.callbacks.torch.activations.gate_relus` it marks the ReLU of a
    squeeze-excitation gate, whose per-unit shares are not judged (see there). A 1x1 map alone
    proves nothing: the last stage of an ImageNet-style CNN on 32-pixel images is 1x1 too, and
    its units dying is the fault ``dead_relu`` exists for.

    Example:
        >>> pooled_map((8, 48, 1, 1), unit_axis=1), pooled_map((8, 1, 1, 48), unit_axis=-1)
        (True, True)
        >>> pooled_map((8, 48), unit_axis=-1), pooled_map((8, 48, 4, 4), unit_axis=1)
        (False, False)
    """
    if len(shape) < 3:
        return False
    unit = unit_axis % len(shape)
    return all(size == 1 for axis, size in enumerate(shape) if axis not in (0, unit))


#: Class counts (``label_count``) are skipped past this many classes.
MAX_CLASSES = 1024


def one_label_per_example(shape: tuple[int | None, ...], onehot: bool = False) -> bool:
    """Whether labels of this shape give one class per example, the labels ``label_count`` counts.

    Class ids ``(batch,)`` or ``(batch, 1)``, or one-hot rows ``(batch, classes)``, do. Labels with
    a sequence or spatial axis, a language model's next-token ids ``(batch, tokens)`` or a
    segmentation mask, label tokens or pixels: their frequencies follow the language or the
    scene (a few tokens make most of any text) and are no class balance to fix.

    Example:
        >>> one_label_per_example((32,)), one_label_per_example((32, 1)), one_label_per_example((32, 10), onehot=True)
        (True, True, True)
        >>> one_label_per_example((8, 128)), one_label_per_example((8, 128, 50), onehot=True)
        (False, False)
    """
    rank = len(shape) - (1 if onehot else 0)
    return rank <= 1 or (rank == 2 and shape[-1] == 1 and not onehot)


USER_PREFIX = "user/"  # series reported with tripwire.observe(name, value) are "user/<name>"

_TREES = frozenset({"tree_depth", "feature_importance", "feature_chances"})
_VALIDATION = frozenset({"val_loss", "epochs_since_val"})  # epochs_since_val: absent in Keras, which reads as 1

#: What the callback of each framework collects (``user/<name>`` series: torch and keras only).
COLLECTED: dict[str, frozenset[str]] = {
    "torch": frozenset(CATALOGUE) - _TREES,
    "keras": frozenset(CATALOGUE) - _TREES,
    "xgboost": frozenset({"loss", "label_count"}) | _VALIDATION | _TREES,
}

#: The callback class users know for each framework name, for messages.
CALLBACKS = {"torch": "LightningTripwire", "keras": "KerasTripwire", "xgboost": "XGBoostTripwire"}


def is_known(stat: str) -> bool:
    """Whether some collector can provide ``stat``: a catalogue entry or a ``user/<name>`` series.

    Example:
        >>> is_known("grad_norm"), is_known("user/attn_entropy"), is_known("grad_nrom"), is_known("user/")
        (True, True, False, False)
    """
    return stat in CATALOGUE or (stat.startswith(USER_PREFIX) and len(stat) > len(USER_PREFIX))


def collects(framework: str, stat: str) -> bool:
    """Whether the callback of ``framework`` (``torch``, ``keras``, ``xgboost``) collects ``stat``.

    Example:
        >>> collects("torch", "tree_depth"), collects("xgboost", "tree_depth"), collects("keras", "user/x")
        (False, True, True)
    """
    if stat.startswith(USER_PREFIX):
        return framework in ("torch", "keras")
    return stat in COLLECTED.get(framework, CATALOGUE)


@dataclass(frozen=True)
class Need:
    """A statistic a rule needs, with the options that change its computation.

    Options are a sorted tuple of ``(name, value)`` pairs so a Need is hashable and two rules
    needing the same thing share one computation.
    """

    stat: str
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(sorted(self.options)))

    @property
    def key(self) -> str:
        """Series name: the stat, followed by its options in brackets when it has any."""
        if not self.options:
            return self.stat
        return f"{self.stat}[{','.join(f'{k}={v}' for k, v in self.options)}]"

    def option(self, name: str, default: Any = None) -> Any:
        """Value of option ``name``."""
        return dict(self.options).get(name, default)


@dataclass
class Sample:
    """Everything collected at one point of training: ``stats[key][subject] = value``.

    A sample holds only the series that were computed at that point; a rule looks up what it
    needs and treats an absent series as "nothing new".
    """

    step: int
    epoch: int | None = None
    stats: dict[str, dict[str | None, float]] = field(default_factory=dict)

    def series(self, key: str | Need) -> dict[str | None, float] | None:
        """Values of one series by subject, or None when absent from this sample."""
        return self.stats.get(key.key if isinstance(key, Need) else key)

    def scalar(self, key: str | Need) -> float | None:
        """The run-wide (subject ``None``) value of a series, or None when absent."""
        values = self.series(key)
        if not values:
            return None
        if None in values:
            return values[None]
        return next(iter(values.values())) if len(values) == 1 else None

    def add(self, key: str | Need, values: dict[str | None, float] | float) -> None:
        """Set a series (a float is stored as the run-wide value)."""
        name = key.key if isinstance(key, Need) else key
        self.stats[name] = values if isinstance(values, dict) else {None: float(values)}
