"""The corpus registry: healthy trainings of real architectures and their fault twins.

An :class:`Entry` is one training. A healthy entry is a real architecture trained the way its
users train it, on synthetic data or a data set scikit-learn ships; its fault twin is the same
training with one planted fault and the rules that should name it (any one of them counts).
Entries register themselves when their module is imported (:func:`load`); a module touches
its framework only inside the training function, so listing the corpus imports none.

A training function takes a ``make_callback(**extra)`` that builds the framework's tripwire
callback with the runner's config, record directory and run name (``extra`` adds adapter
arguments such as XGBoost's ``labels=``) and returns the callback it trained with.

Example:
    >>> corpus = Corpus()
    >>> mlp = corpus.healthy("demo/mlp", "lightning", "an MLP", lambda make_callback: make_callback())
    >>> twin = corpus.twin(mlp, "lr_x100", "learning rate x100", ["exploding_gradient", "nonfinite"],
    ...                    lambda make_callback: make_callback())
    >>> twin.name, twin.healthy, [e.name for e in corpus.select(["demo/mlp"])]
    ('demo/mlp+lr_x100', 'demo/mlp', ['demo/mlp', 'demo/mlp+lr_x100'])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

FRAMEWORKS = ("lightning", "keras", "xgboost")

#: the corpus modules, in the order the table lists them
MODULES = ("lightning_vision", "lightning_text", "lightning_blocks", "lightning_loops", "keras_blocks",
           "keras_small", "keras_apps", "xgboost_tabular")

Train = Callable[[Callable[..., Any]], Any]


@dataclass(frozen=True)
class Entry:
    """One training of the corpus.

    Attributes:
        name: ``family/model`` for a healthy run, ``family/model+fault`` for its twin.
        framework: ``lightning``, ``keras`` or ``xgboost``.
        about: one line: architecture, data, length, what is special about the training.
        train: the training function (see the module docstring).
        healthy: for a twin, the name of its healthy entry; None for a healthy entry.
        fault: for a twin, the planted fault in words.
        expect: for a twin, the rules that should fire (one of them is enough).
        blocked: why the entry cannot run yet ('' when it can); it is still run and reported.
        slow: why the entry takes far longer than a minute ('' when it does not); slow entries
            run only when asked for (``--slow``).
    """

    name: str
    framework: str
    about: str
    train: Train
    healthy: str | None = None
    fault: str = ""
    expect: tuple[str, ...] = ()
    blocked: str = ""
    slow: str = ""

    @property
    def is_twin(self) -> bool:
        return self.healthy is not None


class Corpus:
    """Entries in registration order, by name."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> Entry:
        if entry.framework not in FRAMEWORKS:
            raise ValueError(f"{entry.name}: framework {entry.framework!r} is not one of {FRAMEWORKS}")
        if entry.name in self.entries:
            raise ValueError(f"{entry.name} is registered twice")
        self.entries[entry.name] = entry
        return entry

    def healthy(self, name: str, framework: str, about: str, train: Train, *, blocked: str = "", slow: str = "",
                ) -> Entry:
        """Register a healthy training."""
        return self.add(Entry(name, framework, about, train, blocked=blocked, slow=slow))

    def twin(self, healthy: Entry, slug: str, fault: str, expect: Sequence[str], train: Train, *,
             blocked: str = "") -> Entry:
        """Register the fault twin ``healthy.name + '+' + slug`` of a healthy entry."""
        return self.add(Entry(f"{healthy.name}+{slug}", healthy.framework, healthy.about, train,
                              healthy=healthy.name, fault=fault, expect=tuple(expect),
                              blocked=blocked or healthy.blocked, slow=healthy.slow))

    def select(self, names: Iterable[str] = (), frameworks: Iterable[str] = (), slow: bool = False) -> list[Entry]:
        """Entries named in ``names`` (a healthy name brings its twins along) of ``frameworks``
        (all when empty), in registration order; slow entries only when named or ``slow``.
        Raises KeyError for an unknown name."""
        names, frameworks = list(names), set(frameworks)
        unknown = [n for n in names if n not in self.entries]
        if unknown:
            raise KeyError(f"unknown corpus entries: {', '.join(unknown)}; known: {', '.join(self.entries)}")
        wanted = set(names)
        return [e for e in self.entries.values()
                if (e.name in wanted or e.healthy in wanted or (not wanted and (slow or not e.slow)))
                and (not frameworks or e.framework in frameworks)]


#: the corpus every module registers into
CORPUS = Corpus()


def load() -> Corpus:
    """Import every corpus module (which registers its entries) and return :data:`CORPUS`."""
    for module in MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return CORPUS
