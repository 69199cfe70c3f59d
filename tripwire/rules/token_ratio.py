"""`token_ratio`: one token id (padding by default) fills too much of the integer inputs."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.rules._percent import percent
from tripwire.stats import CATALOGUE, Sample

_PAD_ADVICE = ("pad each batch to its longest sequence instead of a fixed max_length (dynamic padding, "
               "DataCollatorWithPadding), bucket or sort sequences by length, pack short sequences, or lower "
               "max_length; check that the attention mask and the loss ignore padding")
_OTHER_ADVICE = ("if it is the unknown-token id, the tokenizer does not match the text (wrong vocabulary, casing or "
                 "language): use the model's own tokenizer; otherwise check the preprocessing that produces it")


@register
class TokenRatio(Rule):
    """Fire when token id ``token`` is more than ``threshold`` of the input tokens seen.

    ``token_count[token=T]`` counts occurrences of ``T`` and ``token_total`` all integer input
    elements since the previous sample; the rule sums both over the run. Once the total reaches
    ``min_tokens``:

        share = count / total;   fires when share > threshold

    and clears when the share falls back. With the pad id, a high share means most of the
    compute goes to padding (and, without a correct attention mask, into the model's outputs).
    Same idea and defaults as SageMaker's NLPSequenceRatio.

    Args:
        token: the token id to watch. Defaults to 0 (padding).
        threshold: largest acceptable share of the inputs. Defaults to 0.5.
        min_tokens: tokens to see before judging. Defaults to 1000.

    Example:
        >>> from tripwire.stats import CATALOGUE, Sample
        >>> rule = TokenRatio("token_ratio")
        >>> rule.needs()[0].key
        'token_count[token=0]'
        >>> s = Sample(10, stats={"token_count[token=0]": {None: 700.0}, "token_total": {None: 1000.0}})
        >>> [(v.fired, round(v.value, 2)) for v in rule.check(s)]
        [(True, 0.7)]
    """

    kind = "token_ratio"
    summary = "share of one token id (pad 0) in the integer inputs > threshold"
    limits: ClassVar[tuple[Limit, ...]] = (Limit("threshold", "upper", "linear"),)

    class Params(RuleParams):
        """Parameters of `token_ratio`."""

        token: int = Field(CATALOGUE["token_count"].default("token"),
                           description="token id to watch (0: the usual padding id)")
        threshold: float = Field(0.5, gt=0, le=1, description="largest acceptable share of the input tokens")
        min_tokens: int = Field(1000, ge=1, description="input tokens to see before judging")

    def initial_state(self) -> dict[str, Any]:
        return {"count": 0.0, "total": 0.0}

    def needs(self) -> list[Need]:
        return [Need("token_count", (("token", self.params.token),)), Need("token_total")]

    def check(self, sample: Sample) -> list[Verdict]:
        count = sample.scalar(self._series)
        total = sample.scalar("token_total")
        if count is None or total is None or not (math.isfinite(count) and math.isfinite(total)):
            return []
        st, p = self.state, self.params
        st["count"] += float(count)
        st["total"] += float(total)
        if st["total"] < p.min_tokens:
            return []
        share = st["count"] / st["total"]
        if share <= p.threshold:
            return [self.clear(None)]
        return [self.fire(
            None, value=share, threshold=p.threshold,
            message=f"token id {p.token} is {percent(share, p.threshold)} of the {st['total']:.0f} input tokens "
                    f"seen by step {sample.step} (limit {percent(p.threshold)}): most of each batch is "
                    f"{'padding' if p.token == 0 else f'token {p.token}'}",
            suggestion=_PAD_ADVICE if p.token == 0 else _OTHER_ADVICE,
            token=p.token, token_count=st["count"], token_total=st["total"])]
