"""`tree_depth`: boosted trees grow deeper than a limit."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.stats import Sample


@register
class TreeDepth(Rule):
    """Fire when the deepest tree in the ensemble is deeper than ``max_depth``.

    Collectors report, per boosting round, the real depth (edges from the root to the deepest
    leaf, read from the dump of the new round's trees) of the deepest tree added in that round.
    A tree stays in the model once added, so the rule compares the deepest tree seen so far and,
    once it fires, does not clear: one finding per run, however the later rounds vary.

    XGBoost's default ``max_depth`` is 6 and tuned models rarely exceed 10; ``max_depth = 10``
    is silent on those and fires for unbounded ``grow_policy='lossguide'`` trees and for a
    ``max_depth = 15`` setting.

    Args:
        max_depth: deepest acceptable tree. Defaults to 10.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = TreeDepth("tree_depth")
        >>> samples = [Sample(r, stats={"tree_depth": {None: d}}) for r, d in enumerate([6, 6, 15, 6], 1)]
        >>> [v.fired for s in samples for v in rule.check(s)]
        [False, False, True, True]
    """

    kind = "tree_depth"
    summary = "the deepest boosted tree is deeper than max_depth"
    limits: ClassVar[tuple[Limit, ...]] = (Limit("max_depth", "upper", "int"),)

    class Params(RuleParams):
        """Parameters of `tree_depth`."""

        max_depth: int = Field(10, ge=1, description="deepest acceptable tree (edges from root to deepest leaf)")

    def initial_state(self) -> dict[str, Any]:
        return {"deepest": None, "round": None}

    def needs(self) -> list[Need]:
        return [Need("tree_depth")]

    def check(self, sample: Sample) -> list[Verdict]:
        depth = sample.scalar("tree_depth")
        if depth is None or not math.isfinite(depth):
            return []
        if self.state["deepest"] is None or depth > self.state["deepest"]:
            self.state["deepest"], self.state["round"] = int(depth), sample.step
        deepest, since, limit = self.state["deepest"], self.state["round"], self.params.max_depth
        if deepest <= limit:
            return [self.clear(None)]
        return [self.fire(
            None, value=deepest, threshold=limit,
            message=f"a tree of depth {deepest} was added at round {since} (limit {limit}): deep trees memorise "
                    "the training data and overfit",
            suggestion=f"set max_depth to {min(limit, 6)} or less (3..8 is typical), raise min_child_weight or "
                       "gamma, add subsample/colsample_bytree < 1, and use early stopping on a validation set",
            depth=deepest, round=since, latest_depth=int(depth))]
