"""The statistics vocabulary shared by rules (which declare what they need) and collectors
(which compute exactly that, on the device, on sampled steps).

A statistic is a named series of scalars, one per *subject* (a parameter, a layer, a class,
a feature, or ``None`` for a run-wide value). A :class:`Need` names one statistic plus the
options that change how it is computed (for example the inactivity level of a dead ReLU), and
its :attr:`Need.key` is the series name in a :class:`Sample` and in the run record.

:data:`CATALOGUE` is the one place that says, per statistic, how the ranks of a distributed run
combine it, what a subject is, which activation families it is measured on, the defaults of its
options, and which callbacks send it (:data:`COLLECTED`); the collectors read their reductions
and defaults from it, and where a rule can run follows from its needs (:func:`frameworks_for`).

Example:
    >>> need = Need("act_dead_frac", (("inactive_below", 0.01),))
    >>> need.key
    'act_dead_frac[inactive_below=0.01]'
    >>> s = Sample(step=10, epoch=0, stats={"loss": {None: 0.7}})
    >>> s.scalar("loss"), s.scalar("val_loss")
    (0.7, None)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

Reduce = Literal["same", "sum", "mean", "max", "min"]

#: The callbacks' framework names, in the order they are listed.
FRAMEWORKS = ("torch", "keras", "xgboost")
_EVERY = frozenset(FRAMEWORKS)
_NETWORKS = frozenset({"torch", "keras"})  # the neural-network callbacks (LightningTripwire, KerasTripwire)

#: Activation families. ``relu``: a flat zero region where a unit passes no gradient (ReLU, ReLU6,
#: hard-swish below -3), so units can die; a unit is active where its output is not 0. ``leaky``:
#: a gradient for negative inputs too (LeakyReLU, PReLU, the ELU family), so units cannot die.
#: ``tanh`` and ``sigmoid``: saturating. Which module classes or activation functions belong to
#: a family is each framework's knowledge; which statistics apply to a family is the catalogue's.
ACTIVATION_FAMILIES = ("relu", "leaky", "tanh", "sigmoid")
_SATURATION_OPTIONS = (("level", 0.99), ("share", 0.9))
_ALLCLOSE_OPTIONS = (("atol", 1e-8), ("rtol", 1e-5))
#: The series a spike is judged on, and the defaults of the judgement (OLMo-core, Levanter: more than
#: 6 deviations above a 128-step history, after 64 warm-up steps).
SPIKE_SERIES = ("loss", "grad_norm")
_SPIKE_OPTIONS = (("series", "loss"), ("window", 128), ("warmup", 64), ("limit", 6.0))
#: who judges spikes at every optimizer step: the torch adapters and the Keras callback
_SPIKES = frozenset({"torch", "keras"})


@dataclass(frozen=True)
class StatInfo:
    """Everything about one statistic that is not its computation: how ranks combine it, what a
    subject is, who collects it, its options.

    Attributes:
        reduce: how the values of the ranks of a data-parallel run combine into the run's value:
            ``sum`` for counts and totals, ``max``/``min`` for extremes and flags, ``mean`` for a
            mean over what every rank saw (a collector may carry it as a (total, count) pair that
            sums), ``same`` for a value of the state every rank shares (the weights, the gradient
            the update applies, the optimizer), which needs no collective where every rank holds
            it already (DDP averages the gradients before they are read) and is averaged where each
            replica measures its own share of it (a Keras replica's gradient, before
            ``MirroredStrategy`` sums them).
        per: what a subject is (``run``: one run-wide value, subject ``None``).
        doc: what it means, for people.
        collected_by: the frameworks whose callback produces it (see :data:`COLLECTED`).
        families: for an activation statistic, the :data:`ACTIVATION_FAMILIES` it is measured on.
        options: the options that change its computation, with their defaults: a :class:`Need`
            that leaves one out gets the default (:meth:`Need.setting`); the rules that pass an
            option take their parameter's default from here too.
        absent: what a sample without it means, where absence means something (a rule reads the
            value then, and a callback that never sends it can still feed the rule); None: absent
            is unknown.
    """

    reduce: Reduce
    per: str
    doc: str
    collected_by: frozenset[str] = _NETWORKS
    families: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    absent: float | None = None

    def default(self, option: str) -> Any:
        """The default of one of its options.

        Example:
            >>> CATALOGUE["act_tanh_sat_frac"].default("share")
            0.9
        """
        defaults = dict(self.options)
        if option not in defaults:
            raise KeyError(f"no option {option!r}; options: {', '.join(defaults) or 'none'}")
        return defaults[option]


#: Every built-in statistic. Collectors compute the subset the enabled rules need.
CATALOGUE: dict[str, StatInfo] = {
    # losses
    "loss": StatInfo("mean", "run", "mean training loss over the steps since the previous sample",
                     collected_by=_EVERY),
    "val_loss": StatInfo("mean", "run", "validation loss at the end of a validation run", collected_by=_EVERY),
    "epochs_since_val": StatInfo("same", "run", "epochs of training since the previous validation (or the start), "
                                                "in the sample of a validation run: 0.5 when validating twice per "
                                                "epoch; for XGBoost the rounds since the previous sample times eta "
                                                "(a round adds eta of a full-strength tree); absent where it is 1 "
                                                "by construction (Keras validates at epoch ends) or the epoch "
                                                "length is unknown (an iterable dataset), which the rules read as 1",
                                 collected_by=frozenset({"torch", "xgboost"}), absent=1.0),
    "loss_nonfinite": StatInfo("sum", "run", "training steps since the previous sample whose loss was NaN/Inf"),
    # gradients (taken unscaled, before clipping, once per optimizer step)
    "grad_norm": StatInfo("same", "parameter", "L2 norm of the gradient"),
    "grad_abs_mean": StatInfo("same", "parameter", "mean absolute gradient"),
    "grad_global_norm": StatInfo("same", "run", "L2 norm over all gradients"),
    "grad_nonfinite": StatInfo("max", "run", "1 if any gradient element is NaN/Inf (AMP skip steps excluded)"),
    "grad_zero_frac": StatInfo("same", "parameter", "share of exactly-zero gradient elements"),
    "grad_var": StatInfo("same", "parameter", "variance of the gradient elements"),
    # spikes, judged on the device at every optimizer step; a rank's loss is its own, so the ranks' values
    # combine by their maximum (the global gradient norm is the same on every rank: its maximum is itself)
    "spike_max_z": StatInfo("max", "run", "largest robust z-score of `series` (training loss or global gradient "
                                          "norm) since the previous sample, on logarithms: (log value - median) / "
                                          "(1.4826 MAD) over the last `window` steps that were no spike, once "
                                          "`warmup` steps are in",
                            collected_by=_SPIKES, options=_SPIKE_OPTIONS),
    "spike_count": StatInfo("max", "run", "optimizer steps since the previous sample whose `series` was more than "
                                          "`limit` robust deviations above its history (see spike_max_z)",
                            collected_by=_SPIKES, options=_SPIKE_OPTIONS),
    "spike_last_step": StatInfo("max", "run", "the last of those steps (-1: none)", collected_by=_SPIKES,
                                options=_SPIKE_OPTIONS),
    "amp_skipped": StatInfo("max", "run", "1 if the loss scaler skipped this optimizer step (sent under loss "
                                          "scaling only: fp16 AMP, a Keras LossScaleOptimizer)"),
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
                                 "1 if allclose(w, w at the previous sample; options rtol, atol) else 0",
                                 options=_ALLCLOSE_OPTIONS),
    "init_weight_gain": StatInfo("same", "parameter",
                                 "std(w) * sqrt(fan_in) of a weight matrix/kernel before training"),
    "init_identical_rows": StatInfo("same", "parameter",
                                    "share of output units whose incoming weights are allclose to the mean row "
                                    "(options rtol, atol), before training", options=_ALLCLOSE_OPTIONS),
    # activations (forward hooks / wrapped activations of the families they apply to)
    "act_dead_frac": StatInfo("mean", "layer", "share of a ReLU layer's units active in fewer than "
                                               "`inactive_below` of the samples",
                              families=("relu",), options=(("inactive_below", 0.01),)),
    "act_tanh_sat_frac": StatInfo("mean", "layer", "share of a tanh layer's units with |y| >= `level` in at "
                                                   "least `share` of the samples",
                                  families=("tanh",), options=_SATURATION_OPTIONS),
    "act_sigmoid_sat_frac": StatInfo("mean", "layer", "share of a sigmoid layer's units with y <= 1-`level` or "
                                                      "y >= `level` in at least `share` of the samples",
                                     families=("sigmoid",), options=_SATURATION_OPTIONS),
    "act_zero_frac": StatInfo("mean", "layer", "share of exactly-zero activation elements",
                              families=ACTIVATION_FAMILIES),
    "act_var": StatInfo("mean", "layer", "variance of the activation elements", families=ACTIVATION_FAMILIES),
    # data
    "label_count": StatInfo("sum", "class", "training labels seen since the previous sample, per class",
                            collected_by=_EVERY),
    "input_count": StatInfo("sum", "feature", "input values seen since the previous sample, per feature"),
    "input_sum": StatInfo("sum", "feature", "sum of input values, per feature"),
    "input_sumsq": StatInfo("sum", "feature", "sum of squared input values, per feature"),
    "input_min": StatInfo("min", "feature", "smallest input value, per feature"),
    "input_max": StatInfo("max", "feature", "largest input value, per feature"),
    "token_count": StatInfo("sum", "run", "occurrences of token id `token` in integer inputs",
                            options=(("token", 0),)),
    "token_total": StatInfo("sum", "run", "integer input elements seen"),
    "confusion": StatInfo("sum", "class pair", "validation samples of true class t predicted as p; subject 't,p'"),
    # boosted trees
    "tree_depth": StatInfo("same", "run", "deepest tree added in the round", collected_by=frozenset({"xgboost"})),
    "feature_importance": StatInfo("same", "feature", "normalized total gain (sums to 1)",
                                   collected_by=frozenset({"xgboost"})),
    "feature_chances": StatInfo("same", "run", "splits so far at which each feature was a candidate, on average "
                                               "(splits x the colsample fractions)",
                                collected_by=frozenset({"xgboost"})),
    "boosting_progress": StatInfo("same", "run", "rounds so far times eta: the full-strength trees the model "
                                                 "amounts to (10 rounds at the default eta 0.3 are 3.0)",
                                  collected_by=frozenset({"xgboost"})),
    "heldout_importance": StatInfo("same", "feature", "permutation importance on held-out rows (eval_data), in "
                                                      "standard errors above zero; correlated features are "
                                                      "shuffled together", collected_by=frozenset({"xgboost"})),
}

#: The activation statistics (those measured on activation families).
ACTIVATION_STATS = frozenset(stat for stat, info in CATALOGUE.items() if info.families)
#: The per-feature input statistics, in the order the collectors lay them out.
INPUT_STATS = ("input_count", "input_sum", "input_sumsq", "input_min", "input_max")
#: The activation statistics that are a share of a layer's units, each judged over the samples of a call.
UNIT_SHARES = frozenset({"act_dead_frac", "act_tanh_sat_frac", "act_sigmoid_sat_frac"})
#: A per-unit share ("active in < 1% of the samples") needs samples: from a call with fewer (a batch
#: of 1) a healthy unit that happened to be off looks dead, so such calls are not counted.
PER_UNIT_MIN_SAMPLES = 8


def measured_on(stat: str, family: str) -> bool:
    """Whether activation statistic ``stat`` is measured on activations of ``family``.

    Example:
        >>> measured_on("act_dead_frac", "relu"), measured_on("act_dead_frac", "leaky"), measured_on("act_var", "leaky")
        (True, False, True)
    """
    return family in CATALOGUE[stat].families


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

#: The series a torch sample carries where a rule has the ``skip_step`` action: the optimizer steps
#: whose update was left out since the previous sample. The adapter knows it on the host; no
#: collector computes it, so it is no catalogue statistic and no rule needs it.
STEPS_SKIPPED = "steps_skipped"

#: What the callback of each framework collects, from the catalogue's ``collected_by``.
COLLECTED: dict[str, frozenset[str]] = {
    framework: frozenset(stat for stat, info in CATALOGUE.items() if framework in info.collected_by)
    for framework in FRAMEWORKS
}
#: The callbacks that send ``user/<name>`` series (values the training code reports with tripwire.observe).
USER_SERIES = _NETWORKS

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
        return framework in USER_SERIES
    return stat in COLLECTED.get(framework, CATALOGUE)


def required(need: Need) -> bool:
    """Whether a rule needing ``need`` cannot run where it is never sent: true unless the
    catalogue gives its absence a meaning (``epochs_since_val``, absent: 1 epoch).

    Example:
        >>> required(Need("val_loss")), required(Need("epochs_since_val")), required(Need("user/x"))
        (True, False, True)
    """
    info = CATALOGUE.get(need.stat)
    return info is None or info.absent is None


def frameworks_for(needs: Iterable[Need]) -> tuple[str, ...]:
    """The frameworks whose callback collects every required need (:func:`required`): where a rule
    with these needs can run.

    Example:
        >>> frameworks_for([Need("loss"), Need("val_loss"), Need("epochs_since_val")])
        ('torch', 'keras', 'xgboost')
        >>> frameworks_for([Need("grad_norm")]), frameworks_for([Need("user/x")]), frameworks_for([Need("tree_depth")])
        (('torch', 'keras'), ('torch', 'keras'), ('xgboost',))
    """
    stats = {n.stat for n in needs if required(n)}
    return tuple(f for f in FRAMEWORKS if all(collects(f, stat) for stat in stats))


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

    @cached_property  # looked up at every sample by every rule that reads a series through its Need
    def key(self) -> str:
        """Series name: the stat, followed by its options in brackets when it has any."""
        if not self.options:
            return self.stat
        return f"{self.stat}[{','.join(f'{k}={v}' for k, v in self.options)}]"

    def option(self, name: str, default: Any = None) -> Any:
        """Value of option ``name`` as given (``default`` when not given)."""
        return dict(self.options).get(name, default)

    def setting(self, name: str) -> Any:
        """Value of option ``name``: as given, else the catalogue's default for the statistic.

        Example:
            >>> need = Need("act_tanh_sat_frac", (("level", 0.95),))
            >>> need.setting("level"), need.setting("share")
            (0.95, 0.9)
        """
        given = dict(self.options)
        return given[name] if name in given else CATALOGUE[self.stat].default(name)


def token_keys(needs: Iterable[Need]) -> dict[int, list[str]]:
    """The token ids the ``token_count`` needs count, each with the series keys it is reported under.

    Example:
        >>> needs = [Need("token_count"), Need("token_count", (("token", 0),)), Need("token_count", (("token", 5),))]
        >>> token_keys(needs)
        {0: ['token_count', 'token_count[token=0]'], 5: ['token_count[token=5]']}
    """
    out: dict[int, set[str]] = {}
    for n in needs:
        if n.stat == "token_count":
            out.setdefault(int(n.setting("token")), set()).add(n.key)
    return {t: sorted(keys) for t, keys in sorted(out.items())}


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
