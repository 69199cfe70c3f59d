"""Gradient and weight statistics of the variables the optimizer updates.

What the gradients are, exactly:

- **unscaled**: divided by ``LossScaleOptimizer.dynamic_scale`` (mixed precision) or by the
  optimizer's ``loss_scale_factor``;
- **before clipping** (``clipnorm`` / ``global_clipnorm`` / ``clipvalue`` act inside ``apply``);
- **once per real step** under ``gradient_accumulation_steps=k``: the mean of the k micro-batch
  gradients, taken on the micro-step that updates the weights;
- under ``tf.distribute``: each replica's own gradient times the replica count (Keras divides
  the loss by it), i.e. the gradient of that replica's batch; replicas combine on read with the
  statistic's reduction (:func:`~tripwire.callbacks.keras.buffer.combine_replicas`: averaged,
  NaN/Inf flags by their maximum);
- sparse (``IndexedSlices``) gradients of embeddings: the touched rows only, so untouched rows
  do not read as a vanishing gradient.

Cost: each variable gets one or two full-size reductions (mean of |x|, L2 norm); everything
else is arithmetic on the vector of per-variable results, so the number of operations in the
step grows slowly with the number of variables. NaN/Inf are found from the mean of |x| (a NaN
or Inf anywhere makes it non-finite; finite values overflow it only beyond 3e38).

Example:
    >>> import keras
    >>> from tripwire.callbacks.keras.buffer import Layout
    >>> from tripwire.stats import Need
    >>> dense = keras.layers.Dense(2, name="fc")
    >>> dense.build((None, 3))
    >>> pre, post = Layout("pre"), Layout("post")
    >>> stats = ParamStats([Need("grad_norm"), Need("update_ratio")], dense.trainable_variables, pre, post,
    ...                    loss_scaled=False)
    >>> [(s.key, s.subject) for s in pre.slots[1:3]]
    [('grad_norm', 'fc/kernel'), ('grad_norm', 'fc/bias')]
    >>> stats.wants_weights, stats.wants_snapshot
    (True, True)
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
from keras import ops

from tripwire.callbacks.keras import math as km
from tripwire.callbacks.keras.buffer import Layout, make_variable, reduction
from tripwire.callbacks.keras.optimizer import accumulation_steps, counting_optimizer, is_loss_scaled
from tripwire.element_sample import sampled, stratified_index
from tripwire.stats import Need

#: slots of the pre part: the squared norms of the snapshot (the kept elements of the weights before
#: the update)
SNAP_SUMSQ = "__snapshot_sumsq__"


class ParamStats:
    """Declares and computes the gradient and weight statistics the needs ask for.

    Subjects are variable paths (``dense/kernel``). On a sampled step:

    - :meth:`grads` and :meth:`before_update`, before the update: gradient statistics, then
      ``weight_unchanged`` of the weights as they are (after the previous step) against the
      snapshot of the previous sampled step, and a new snapshot;
    - :meth:`after_update`: weight statistics and ``update_ratio`` = ``||w - snapshot|| / ||snapshot||``.

    A variable whose gradient is None (the loss does not depend on it) is left out of
    ``update_ratio`` and ``weight_unchanged`` (:meth:`note_gradients`): it does not move because
    nothing asks it to, not because the learning rate is too low.

    The snapshot keeps a variable of up to :data:`~tripwire.element_sample.SNAPSHOT_ELEMENTS`
    elements whole and a fixed sample of that many elements of a larger one
    (:mod:`tripwire.element_sample`): ``update_ratio`` and ``weight_unchanged`` compare those.
    """

    def __init__(self, needs: Iterable[Need], variables: list, pre: Layout, post: Layout, loss_scaled: bool,
                 xla: bool = False) -> None:
        needs = list(needs)
        self.fused = not xla  # TensorFlow's one-pass norm has no XLA kernel
        stats = {n.stat for n in needs}
        self.variables = [v for v in variables if _size(v) > 0]
        self._index = {id(v): i for i, v in enumerate(self.variables)}
        names = self.names = _unique([v.path for v in self.variables])

        def block(layout: Layout, stat: str) -> int | None:
            return layout.add_block(stat, names, reduction(stat)) if stat in stats and names else None

        def one(layout: Layout, stat: str) -> int:
            return layout.add(stat, None, reduction(stat))

        self.pre, self.post = pre, post
        self.grad_norm = block(pre, "grad_norm")
        self.grad_abs_mean = block(pre, "grad_abs_mean")
        self.grad_zero_frac = block(pre, "grad_zero_frac")
        self.grad_var = block(pre, "grad_var")
        self.global_norm = one(pre, "grad_global_norm") if "grad_global_norm" in stats else None
        self.grad_nonfinite = one(pre, "grad_nonfinite") if "grad_nonfinite" in stats else None
        self.amp_skipped = one(pre, "amp_skipped") if loss_scaled else None
        self.weight_norm = block(post, "weight_norm")
        self.weight_zero_frac = block(post, "weight_zero_frac")
        self.weight_var = block(post, "weight_var")
        self.ratio = block(post, "update_ratio")
        self.unchanged = [(n, pre.add_block(n.key, names, reduction(n.stat))) for n in needs
                          if n.stat == "weight_unchanged" and names]
        snapshots = self.ratio is not None or bool(self.unchanged)
        self.snap_sumsq = pre.add_block(SNAP_SUMSQ, names, "same") if snapshots and names else None  # mirrored
        # with snapshots, NaN/Inf weights are seen from the snapshot's sum of squares (no extra pass)
        self.weight_nonfinite = None
        if "weight_nonfinite" in stats:
            self.weight_nonfinite = one(pre if snapshots else post, "weight_nonfinite")
        self.unchanged_keys = {n.key for n, _ in self.unchanged}
        self.snapshots: list = []
        #: per variable, the flat indices of the elements the snapshot keeps (None: all of them)
        self.kept = [stratified_index(_size(v)) if sampled(_size(v)) else None for v in self.variables]
        #: variables that got no gradient (left out of ``update_ratio`` and ``weight_unchanged``)
        self.no_gradient: list[str] = []

    @property
    def wants_grads(self) -> bool:
        return any(s is not None for s in (self.grad_norm, self.grad_abs_mean, self.grad_zero_frac, self.grad_var,
                                           self.global_norm, self.grad_nonfinite, self.amp_skipped))

    @property
    def wants_snapshot(self) -> bool:
        return self.ratio is not None or bool(self.unchanged)

    @property
    def wants_weights(self) -> bool:
        return any(s is not None for s in (self.weight_norm, self.weight_zero_frac, self.weight_var, self.ratio)) \
            or (self.weight_nonfinite is not None and not self.wants_snapshot)

    def allocate(self, strategy) -> None:
        """Create the weight snapshots (only when ``update_ratio``/``weight_unchanged`` are needed)."""
        if self.wants_snapshot and not self.snapshots:
            self.snapshots = [make_variable(tuple(v.shape) if idx is None else (len(idx),), f"tripwire_snapshot_{i}",
                                            strategy) for i, (v, idx) in enumerate(zip(self.variables, self.kept))]

    def keep(self, weights: list) -> list:
        """The part of each weight (backend tensors) the snapshot keeps: the weight itself, or its
        sampled elements."""
        return [w if idx is None else ops.take(ops.reshape(w, (-1,)), idx) for w, idx in zip(weights, self.kept)]

    def keep_host(self, weights: list) -> list:
        """:meth:`keep` of weights read to the host (numpy arrays)."""
        return [w if idx is None else w.reshape(-1)[idx] for w, idx in zip(weights, self.kept)]

    @staticmethod
    def grad_scale(optimizer):
        """The loss scale to divide out (read before the update, which may change it), or None."""
        if is_loss_scaled(optimizer):
            return ops.cast(optimizer.dynamic_scale, "float32")
        factor = getattr(optimizer, "loss_scale_factor", None)
        return float(factor) if factor else None

    def effective_grads(self, optimizer, grads, variables, scale) -> dict[int, object]:
        """``{variable index: gradient}`` unscaled, accumulated, per-replica corrected."""
        inner = counting_optimizer(optimizer)
        k = accumulation_steps(optimizer)
        factor = float(_replicas()) / float(k)  # one multiplication per gradient for both
        out = {}
        for g, v in zip(grads, variables):
            i = self._index.get(id(v))
            if g is None or i is None:
                continue
            g = km.f32(_dense(g) if k == 1 else ops.convert_to_tensor(g))
            if scale is not None:
                g = g / scale
            if k > 1:
                g = g + km.f32(inner._accumulated_gradients[inner._get_variable_index(v)])
            if factor != 1.0:
                g = g * factor
            out[i] = g
        return out

    def note_gradients(self, grads, variables) -> None:
        """Leave the variables whose gradient is None out of ``update_ratio`` and ``weight_unchanged``
        and name them in :attr:`no_gradient` (while tracing on TF and JAX, each sampled step on torch)."""
        if not self.wants_snapshot:
            return
        missing = {self._index[id(v)] for g, v in zip(grads, variables) if g is None and id(v) in self._index}
        missing |= {self.names.index(name) for name in self.no_gradient}  # dead slots stay dead
        for i in missing:
            if self.ratio is not None:
                self.post.dead.add(self.ratio + i)
            for _, start in self.unchanged:
                self.pre.dead.add(start + i)
        self.no_gradient = [self.names[i] for i in sorted(missing)]

    def _vector(self, per_var: list, start: int | None = None):
        """Stack per-variable scalars; a variable without a value (no gradient) is left out of the
        record block that begins at slot ``start`` of the pre part."""
        zero = ops.zeros((), "float32")
        for i, value in enumerate(per_var):
            if value is None and start is not None:
                self.pre.dead.add(start + i)
        return ops.stack([zero if v is None else v for v in per_var])

    def grads(self, optimizer, grads, variables, scale) -> dict[int, object]:
        """Gradient statistics of the sampled step."""
        if not self.wants_grads:
            return {}
        g = self.effective_grads(optimizer, grads, variables, scale)
        if not g:
            return {}
        n = len(self.variables)
        values: dict[int, object] = {}
        abs_mean = self._vector([km.abs_mean(g[i]) if i in g else None for i in range(n)], self.grad_abs_mean)
        if self.grad_abs_mean is not None:
            values[self.grad_abs_mean] = abs_mean
        if self.grad_norm is not None or self.global_norm is not None:
            norms = self._vector([km.norm(g[i], self.fused) if i in g else None for i in range(n)], self.grad_norm)
            if self.grad_norm is not None:
                values[self.grad_norm] = norms
            if self.global_norm is not None:
                values[self.global_norm] = km.norm(norms, self.fused)
        if self.grad_var is not None:
            values[self.grad_var] = self._vector([km.variance(g[i]) if i in g else None for i in range(n)],
                                                 self.grad_var)
        if self.grad_zero_frac is not None:
            values[self.grad_zero_frac] = self._vector([km.zero_frac(g[i]) if i in g else None for i in range(n)],
                                                       self.grad_zero_frac)
        if self.grad_nonfinite is not None or self.amp_skipped is not None:
            flag = 1.0 - ops.cast(ops.all(ops.isfinite(abs_mean)), "float32")
            for slot in (self.grad_nonfinite, self.amp_skipped):
                if slot is not None:
                    values[slot] = flag
        return values

    def before_update(self, previous_sumsq, exact: bool) -> dict[int, object]:
        """``weight_unchanged`` of the weights against the snapshot (the previous sampled step's),
        then the weights as the new snapshot; before the update.

        allclose (``|w - s| <= atol + rtol |s|`` everywhere) needs an elementwise pass over every
        weight with several temporaries; two cheaper tests settle nearly every case first. If
        allclose held, ``||w - s|| <= atol sqrt(n) + rtol ||s||`` would too (Minkowski), and
        ``| ||w|| - ||s|| | <= ||w - s||``: so a tensor whose norm moved by more than that bound
        has changed (free: the norms are needed for ``update_ratio`` anyway); otherwise one pass
        computes ``||w - s||``, which is 0 for an unchanged tensor and above the bound for a changed
        one. Only a change too small for both runs the elementwise pass. ``exact=True`` (the torch
        backend, whose ``cond`` reads its predicate on the host) always runs it.
        """
        values: dict[int, object] = {}
        full, s = [x.value for x in self.variables], [x.value for x in self.snapshots]
        w = self.keep(full)
        kept_sumsq = [km.sumsq(x, self.fused) for x in w]
        sumsq = ops.stack(kept_sumsq) if self.snap_sumsq is not None else None
        if self.unchanged:
            sizes = ops.convert_to_tensor([float(_size(x)) for x in w], "float32")
            moved = ops.abs(ops.sqrt(sumsq) - ops.sqrt(previous_sumsq))
            for need, start in self.unchanged:
                rtol, atol = float(need.setting("rtol")), float(need.setting("atol"))
                bound = atol * ops.sqrt(sizes) + rtol * ops.sqrt(previous_sumsq)

                def elementwise(rtol=rtol, atol=atol):
                    return ops.stack([km.allclose(a, b, rtol, atol) for a, b in zip(w, s)])

                def by_distance(bound=bound, elementwise=elementwise):
                    distance = ops.stack([km.norm(km.f32(a) - b, self.fused) for a, b in zip(w, s)])
                    settled = ops.logical_or(ops.equal(distance, 0.0), ops.greater(distance, bound))
                    return ops.cond(ops.all(settled), lambda: ops.cast(ops.equal(distance, 0.0), "float32"),
                                    elementwise)

                if exact:
                    values[start] = elementwise()
                    continue
                values[start] = ops.cond(ops.all(ops.greater(moved, bound)),
                                         lambda: ops.zeros((len(w),), "float32"), by_distance)
        for kept, snap in zip(w, self.snapshots):
            snap.assign(km.f32(kept))
        if sumsq is not None:
            values[self.snap_sumsq] = sumsq
            if self.weight_nonfinite is not None:
                # NaN/Inf anywhere makes the sum of squares non-finite (so do weights beyond ~1e19); a
                # sampled weight needs its own pass for it, which replaces the whole copy it no longer gets
                whole = ops.stack([sq if idx is None else km.sumsq(x, self.fused)
                                   for x, idx, sq in zip(full, self.kept, kept_sumsq)])
                values[self.weight_nonfinite] = 1.0 - ops.cast(ops.all(ops.isfinite(whole)), "float32")
        return values

    def after_update(self, snapshot_sumsq) -> dict[int, object]:
        """Weight statistics and ``update_ratio`` of the sampled step (``snapshot_sumsq``: the
        squared norms of the weights before the update)."""
        values: dict[int, object] = {}
        w = [v.value for v in self.variables]
        if self.weight_norm is not None:
            values[self.weight_norm] = ops.stack([km.norm(x, self.fused) for x in w])
        if self.weight_zero_frac is not None:
            values[self.weight_zero_frac] = ops.stack([km.zero_frac(x) for x in w])
        if self.weight_var is not None:
            values[self.weight_var] = ops.stack([km.variance(x) for x in w])
        if self.ratio is not None:
            delta = ops.stack([km.norm(km.f32(x) - s.value, self.fused) for x, s in zip(self.keep(w), self.snapshots)])
            values[self.ratio] = delta / ops.sqrt(ops.maximum(snapshot_sumsq, 1e-30))
        if self.weight_nonfinite is not None and not self.snapshots:
            check = ops.stack([km.abs_mean(x) for x in w])
            values[self.weight_nonfinite] = 1.0 - ops.cast(ops.all(ops.isfinite(check)), "float32")
        return values


def _size(v) -> int:
    n = 1
    for d in v.shape:
        n *= int(d)
    return n


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _dense(g):
    """The touched rows of a sparse (``IndexedSlices``) gradient; dense gradients unchanged."""
    return g.values if type(g).__name__ == "IndexedSlices" else g


def _replicas() -> int:
    """Replicas in sync under ``tf.distribute`` (1 on other backends)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return int(tf.distribute.get_strategy().num_replicas_in_sync)
