"""`TorchDriver`: what every torch adapter does between its framework's hooks and the monitor.

The Lightning callback (:mod:`~tripwire.callbacks.torch.lightning`) and the plain-loop
:class:`~tripwire.callbacks.torch.loop.Tripwire` subscribe to different hooks, then call the driver
at the same points of a training step, so the schedule, the flush and the decision are written once:

- schedule: :meth:`~TorchDriver.begin_step` starts a batch of optimizer step ``S`` (0-based); the
  step is sampled when :meth:`Monitor.due <tripwire.monitor.Monitor.due>` says so (under gradient
  accumulation every micro-batch of that step is sampled);
- gradients: :meth:`~TorchDriver.before_optimizer_step`, where they are final (unscaled, pre-clip);
- flush: :meth:`~TorchDriver.end_batch` of the batch whose optimizer step ran: one packed vector,
  one collective, one host copy. On CPU the sample is decided at once; on CUDA the copy is left in
  flight and decided at the next :meth:`~TorchDriver.end_batch` (or validation end, or the end of
  training), so the GPU never waits for the host: rules then decide one batch later;
- cost: under ``overhead_budget`` a :class:`~tripwire.step_clock.StepClock` times the steps and the
  driver's own entry points; each flush carries the last sampled step's cost and what a plain step
  spends in them (the slowest rank's, in the packed vector), and
  :meth:`~TorchDriver.decide` hands it to the monitor's :class:`~tripwire.schedule.Schedule`, so every
  rank sets the same interval;
- spikes (``loss_spike``): judged on the device at every optimizer step, in
  :meth:`~TorchDriver.before_optimizer_step` (the global gradient norm, and the loss when the adapter
  handed it over before the update with :meth:`~TorchDriver.add_step_loss`, as Lightning does) or in
  :meth:`~TorchDriver.end_batch` (the loss of an adapter that sees it only after the update). With
  the ``skip_step`` action the step's verdict is read before the update, and a spike drops the
  step's gradients (``grad = None``): every ``torch.optim`` optimizer then leaves those parameters
  and their state (Adam's moments, its step count) as they were. That read is the one host read
  per step tripwire makes, only with ``skip_step``: free on CPU, a sync on CUDA;
- decision: :meth:`~TorchDriver.decide` evaluates a sample, makes every rank hold the same decision
  (:class:`~tripwire.callbacks.torch.ranks.Ranks`, :meth:`Monitor.agreed
  <tripwire.monitor.Monitor.agreed>`) and carries it out through the adapter's sink (checkpoint,
  stop, raise: :meth:`Monitor.execute <tripwire.monitor.Monitor.execute>`).

Failures of tripwire's own instrumentation never reach the training loop: the collector runs each
part under ``monitor.guard`` (:mod:`~tripwire.callbacks.torch.parts`) and the driver guards building
it and reading the loss. A failure that would put one rank out of step with the others (a part
whose statistics are gathered, or the flush itself) switches the collector off on every rank at
the decision of that flush (:meth:`TorchDriver.agree`).

Example (a single process; the plain loop drives it this way):
    >>> import torch
    >>> from tripwire import Monitor
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Linear(4, 2)
    >>> opt = torch.optim.SGD(net.parameters(), lr=1e9)                 # a learning rate that blows up
    >>> class Sink:
    ...     checkpoint_suffix, checkpoint_root, stopped = ".pt", ".", False
    ...     def stop(self, finding): self.stopped = True
    ...     def save_checkpoint(self, path): pass
    >>> driver = TorchDriver(Monitor({"interval": 2, "rules": {"nonfinite": {}}}, log_dir=False))
    >>> driver.connect(Ranks(), Sink())
    >>> driver.build(net); driver.start(net, torch.device("cpu"))
    >>> for step in range(6):
    ...     driver.begin_step(step)
    ...     loss = net(torch.randn(8, 4)).square().mean()
    ...     opt.zero_grad(); loss.backward()
    ...     driver.before_optimizer_step(opt); opt.step()
    ...     driver.end_batch(lambda: loss, epoch=None)
    ...     if driver.sink.stopped:
    ...         break
    >>> step, driver.monitor.stopped_by.rule
    (2, 'nonfinite')
    >>> driver.detach(); driver.finish()
    tripwire: 1 finding (1 error); training stopped at step 2 by nonfinite
    ...
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from tripwire.callbacks.torch.lr_scale import LrScale
from tripwire.callbacks.torch.parts import COLLECTOR, FLUSH, GRADIENTS, LOSS, ROLLBACK, SKIP_STEP, SPIKES
from tripwire.callbacks.torch.ranks import Ranks
from tripwire.decision import DecisionSink
from tripwire.errors import RuleError
from tripwire.finding import Finding
from tripwire.monitor import Decision, Monitor
from tripwire.rollback import StateKeeper, keeper_for
from tripwire.stats import STEPS_SKIPPED, Sample
from tripwire.step_clock import StepClock

#: the series under which a flush carries the sampling cost to :meth:`TorchDriver.decide` (never a statistic)
TIMING = "__schedule_timing__"


class TorchDriver:
    """Drives a :class:`~tripwire.callbacks.torch.collector.TorchCollector` and a monitor from a
    torch adapter's hooks.

    Args:
        monitor: the adapter's monitor (rules, actions, record, the guard).
        batch_fn: ``batch -> (inputs, labels)`` for batches the collector cannot read.

    Attributes:
        collector: the collector, or None (not built yet, or switched off).
        step: the optimizer step in progress; sampled: whether it is sampled; stepped: whether
            its optimizer step ran.
    """

    def __init__(self, monitor: Monitor, *, batch_fn: Callable[[Any], Any] | None = None) -> None:
        self.monitor = monitor
        self.batch_fn = batch_fn
        self.ranks = Ranks()
        self.sink: DecisionSink | None = None
        self.on_sample: Callable[[Sample], None] | None = None
        self.collector: Any = None
        self.step = 0
        self.sampled = False
        self.stepped = False
        self._pending: Any = None
        self._defer = False
        self._collector_state: dict[str, Any] = {}
        self.clock = StepClock() if monitor.schedule.budgeted else None
        #: whether a rule has the skip_step action (the step's spike verdict is read before its update)
        self.skip = monitor.uses("skip_step")
        #: the steps whose update skip_step left out since the last flush
        self.skipped: list[int] = []
        self._judged_step: int | None = None
        self._loss_before_update = False
        #: the ``reduce_lr`` action's scale on the optimizers' learning rates
        self.lr = LrScale()
        #: the ``rollback`` action's kept training states (None without the action)
        self.keeper: StateKeeper | None = None
        self._state_source: Callable[[], Any] | None = None

    def connect(self, ranks: Ranks, sink: DecisionSink,
                on_sample: Callable[[Sample, list[Finding]], None] | None = None) -> None:
        """The ranks to agree with, the sink that carries out decisions, and ``on_sample(sample,
        findings)``, called with every sample and the findings it raised before the decision is
        carried out (Lightning: its loggers)."""
        self.ranks, self.sink, self.on_sample = ranks, sink, on_sample
        self.monitor.is_main = ranks.is_main

    # state -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The collector's bookkeeping (label classes seen, the spike histories) and the learning-rate
        scale, plain Python types only."""
        data = self.collector.data if self.collector is not None else None
        rollback = {"rollback_skipped": [list(r) for r in self.keeper.skipped]} if self.keeper is not None else {}
        if data is None:
            return {**self._collector_state, "lr_scale": self.lr.state_dict(), **rollback}
        state = {"label_capacity": data.capacity, "classes_seen": data.classes_seen, "lr_scale": self.lr.state_dict(),
                 **rollback}
        if self.collector.spikes is not None:
            state["spikes"] = self.monitor.guard.call(SPIKES, self.collector.spikes.state_dict, fallback={})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (now, or into the collector once it is built)."""
        self._collector_state = dict(state)
        self.keeper = None  # kept again from the restored state, at the next step
        if isinstance(state.get("lr_scale"), dict):
            self.lr.load_state_dict(state["lr_scale"])
        self._restore_collector_state()

    def _restore_collector_state(self) -> None:
        if self.collector is not None and self._collector_state:
            data, state = self.collector.data, self._collector_state
            data.capacity = int(state.get("label_capacity", data.capacity))
            data.classes_seen = int(state.get("classes_seen", 0))
            if self.collector.spikes is not None and isinstance(state.get("spikes"), dict):
                self.monitor.guard.call(SPIKES, self.collector.spikes.load_state_dict, state["spikes"])

    # setup and teardown ----------------------------------------------------------------------------
    def build(self, module: Any) -> None:
        """Build the collector and hook ``module`` (before ``torch.compile`` traces it)."""
        self.collector = self.monitor.guard.call(COLLECTOR, self._build_collector, module)
        self._restore_collector_state()

    def _build_collector(self, module: Any) -> Any:
        from tripwire.callbacks.torch.collector import TorchCollector

        collector = TorchCollector(self.monitor.needs(), batch_fn=self.batch_fn, guard=self.monitor.guard)
        collector.attach(module)
        return collector

    def start(self, module: Any, device: Any) -> None:
        """Allocate device buffers on ``device``, hooking ``module`` again when its submodules changed
        since :meth:`build` (Lightning's ``configure_model``).

        Under DDP the ranks then agree that each has a working collector (one boolean decision per
        run): a part that failed while setting up on one rank only switches it off on every rank.
        """
        if self.collector is not None:
            self.monitor.guard.call(COLLECTOR, self._prepare, module, device)
        healthy = self.collector is not None and not self.collector_broken()
        if self.ranks.distributed:
            healthy = self.ranks.all(healthy)
        if not healthy:
            self.switch_off_collector()

    def _prepare(self, module: Any, device: Any) -> None:
        import torch

        from tripwire.callbacks.torch.packing import torch_distributed_gather

        if not self.collector.attached_to(module):
            self.collector.attach(module)
        self.collector.gather = torch_distributed_gather() if self.ranks.world_size > 1 else None
        self.collector.allocate(torch.device(device))
        if self.collector.spikes is not None:
            self.collector.spikes.loss_is_local = self.ranks.world_size > 1
        self._defer = torch.device(device).type == "cuda"

    def initial_sample(self, *, step: int, epoch: int | None, defer: bool = False) -> None:
        """Initial-weight statistics, once, when training starts from scratch; decided now, or at
        the next :meth:`end_batch` when ``defer`` (a caller that must not act yet)."""
        if self.collector is None:
            return
        flush = self.collector.init_flush(step=step, epoch=epoch)
        if flush is None:
            return
        if defer:
            self._pending = flush
        else:
            self.decide(flush.sample())

    def resume(self) -> None:
        """Training resumes from saved state: no initial-weight sample (``weight_unchanged``
        compares with the weights as they are now), and no parameter shapes to send (the rules'
        restored state holds them)."""
        self._pending = None
        if self.collector is None:
            return
        if self.collector.params is not None:  # the snapshot is the gradient statistics' part
            self.monitor.guard.call(GRADIENTS, self.collector.params.remember_weights)
        self.collector.shapes_sent()

    def attach_optimizers(self, optimizers: Any) -> None:
        """The optimizers whose learning rates ``reduce_lr`` scales."""
        self.lr.attach(optimizers)

    def detach(self) -> None:
        """Remove the collector's hooks from the model and the learning-rate scale's from the optimizers."""
        self.lr.detach()
        if self.collector is not None:
            self.collector.detach()

    def finish(self, error: BaseException | None = None) -> None:
        """Close alerts and the run record (the summary is printed on rank 0); a second call does
        nothing. ``error``: the exception leaving training, when the adapter sees one."""
        self._pending = None
        self.monitor.close(error=error)

    # training --------------------------------------------------------------------------------------
    def begin_step(self, step: int, batch: Any = None) -> None:
        """A batch of optimizer step ``step`` starts (``batch``: its data, when known before its forward)."""
        if self.collector is None:
            return
        if self.clock is None:
            self._begin_step(step, batch)
            return
        start = perf_counter()
        self._begin_step(step, batch, now=start)
        self.clock.spent(perf_counter() - start)

    def _begin_step(self, step: int, batch: Any, now: float | None = None) -> None:
        if self.keeper is None and self._state_source is not None and self.monitor.guard.ok(ROLLBACK):
            self._start_keeping(step)  # the first step (or the first after a resume): keep its state
        if step != self.step or not self.sampled:  # a later micro-batch of a sampled step stays sampled
            self.sampled = self.monitor.due(step)
        self.step = step
        if self.clock is not None:
            self.clock.begin(step, self.sampled, now=now)
        self.stepped = False
        self.collector.begin_batch(batch, self.sampled, labels=self.monitor.schedule.labels_due(step))

    def add_batch(self, batch: Any) -> None:
        """The data of a batch of the step in progress, read after its forward (the collector keeps what
        the step needs: all of a sampled one, the labels of one whose labels are due)."""
        if self.collector is not None:
            self.collector.add_batch(batch)

    def add_step_loss(self, loss: Any) -> None:
        """A batch's loss of the step in progress, handed over before the update (Lightning's
        ``on_before_backward``): the step's spike verdict then includes its loss."""
        spikes = self.collector.spikes if self.collector is not None else None
        if spikes is not None and spikes.wants("loss"):
            self._loss_before_update = True
            self._timed(self.monitor.guard.call, SPIKES, spikes.add_loss, loss)

    def before_optimizer_step(self, optimizer: Any, scaler: Any = None) -> None:
        """The optimizer step of the step in progress is about to run: its gradients are final."""
        if self.collector is not None:
            self._timed(self._before_optimizer_step, optimizer, scaler)

    def _before_optimizer_step(self, optimizer: Any, scaler: Any) -> None:
        self.stepped = True
        if self.keeper is not None and self.keeper.skips(self.step):  # a resumed run replays a rolled-back step
            _drop_gradients(optimizer)
        self.collector.before_optimizer_step(optimizer, scaler)
        spikes = self.collector.spikes
        if spikes is None or not self.monitor.guard.ok(SPIKES):
            return
        if self._judged_step != self.step:  # the step's first optimizer (a GAN's second one follows the verdict)
            self._judged_step = self.step
            self.monitor.guard.call(SPIKES, spikes.judge, self.step, optimizer)
        if self.skip and spikes.flag is not None:
            self.monitor.guard.call(SKIP_STEP, self._skip_if_spiked, optimizer, spikes.flag)

    def _skip_if_spiked(self, optimizer: Any, flag: Any) -> None:
        if not bool(flag):  # the one host read per step (only with skip_step)
            return
        _drop_gradients(optimizer)
        if not self.skipped or self.skipped[-1] != self.step:
            self.skipped.append(self.step)

    def end_batch(self, read_loss: Callable[[], Any], epoch: int | None) -> None:
        """A training batch ended: decide a pending sample, keep the batch's loss (``read_loss()``,
        under the guard), and flush when this batch's optimizer step of a sampled step ran."""
        if self.collector is not None:
            self._timed(self._end_batch, read_loss, epoch)

    def _timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``; under ``overhead_budget`` its time counts as the step's time in the hooks."""
        if self.clock is None:
            return fn(*args)
        start = perf_counter()
        try:
            return fn(*args)
        finally:
            self.clock.spent(perf_counter() - start)

    def _end_batch(self, read_loss: Callable[[], Any], epoch: int | None) -> None:
        if self._pending is not None:
            self.process_pending()
            if self.collector is None:  # switched off by that decision
                return
        collector = self.collector
        loss = self.monitor.guard.call(LOSS, read_loss)
        if self.keeper is not None and self.stepped:
            self.monitor.guard.call(ROLLBACK, self.keeper.after_step, self.step)
        collector.add_loss(loss)
        if collector.spikes is not None and not self._loss_before_update:
            self._judge_loss_after_update(loss)
        if not (self.sampled and self.stepped):
            collector.end_batch()
            return
        self.sampled = False
        flush = self.collector.flush(step=self.step, epoch=epoch, extra=self._timing_pieces())
        if self.skip:
            flush.add_known(STEPS_SKIPPED, {None: float(len(self.skipped))})
            self.skipped = []
        if self._defer:
            self._pending = flush
        else:
            self.decide(flush.sample())

    def _timing_pieces(self) -> list[Any]:
        """Under ``overhead_budget``: the last sampled step's cost and a plain step's time in the
        hooks, reduced with ``max`` across ranks (NaN when none was measured; a NaN on any rank
        leaves the schedule as it is)."""
        if self.clock is None:
            return []
        import torch

        from tripwire.callbacks.torch.packing import Piece

        taken = self.clock.take() or (float("nan"),) * 3
        values = torch.tensor(taken, dtype=torch.float32, device=self.collector.device)
        return [Piece(values, "max", lambda v: {TIMING: {"cost": v[0], "plain": v[1], "fixed": v[2]}})]

    def _judge_loss_after_update(self, loss: Any) -> None:
        """The loss of an adapter that sees it after the update (a plain loop, the HF Trainer):
        judged once the step's optimizer stepped, too late to skip that step."""
        spikes = self.collector.spikes
        if not spikes.wants("loss") or not self.monitor.guard.ok(SPIKES):
            return
        self.monitor.guard.call(SPIKES, spikes.add_loss, loss)
        if self.stepped:
            self.monitor.guard.call(SPIKES, spikes.judge, self.step)

    def process_pending(self) -> None:
        """Decide the sample whose host copy was left in flight, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.decide(pending.sample())

    # rollback --------------------------------------------------------------------------------------
    def keep_states(self, source: Callable[[], Any]) -> None:
        """With the ``rollback`` action: keep training states from ``source()`` (a
        :class:`~tripwire.callbacks.torch.training_state.TrainingState`, made when the first step
        starts), every ``every`` steps of the first rule with the action."""
        if self.monitor.uses("rollback"):
            self._state_source = source

    def _start_keeping(self, step: int) -> None:
        def make() -> StateKeeper | None:
            state = self._state_source()  # type: ignore[misc]
            keeper = keeper_for(self.monitor, state.capture, state.restore,
                                saved=self._collector_state.get("rollback_skipped", []))
            if keeper is not None:
                keeper.start(step - 1)  # the state before step's update
            return keeper

        self.keeper = self.monitor.guard.call(ROLLBACK, make)

    def roll_back(self, finding_step: int) -> tuple[int, int] | None:
        """Restore the newest state kept before the steps a finding of ``finding_step`` implicates
        (:meth:`StateKeeper.roll_back_for`): ``(restored step, last step trained)``, or None."""
        return None if self.keeper is None else self.keeper.roll_back_for(finding_step, now=self.step)

    # validation ------------------------------------------------------------------------------------
    @property
    def validating(self) -> bool:
        """Whether validation runs produce samples (``val_loss`` or ``confusion`` is needed)."""
        return self.collector is not None and self.collector.validation_wanted

    def validation_end(self, val_loss: Any, *, step: int, epoch: int | None,
                       complete: Callable[[Sample], None] | None = None) -> None:
        """Decide the sample of a validation run: ``val_loss`` (a scalar, or None) and the confusion
        matrix of its batches; ``complete(sample)`` adds what the adapter knows besides."""
        if self.clock is not None:
            self.clock.interrupt()
        if not self.validating:
            return
        self.process_pending()
        if self.collector is None:  # switched off by that decision
            return
        sample = self.collector.end_validation(val_loss, step=step, epoch=epoch).sample()
        if complete is not None:
            complete(sample)
        self.decide(sample)

    # acting ----------------------------------------------------------------------------------------
    def decide(self, sample: Sample) -> None:
        """Evaluate a sample and act; every rank calls this at the same points with the same sample."""
        if self.keeper is not None and "val_loss" not in sample.stats:
            self.keeper.note_sample(sample.step)
        timing = sample.stats.pop(TIMING, None)
        if timing:
            self.monitor.schedule.measured(timing["cost"], timing["plain"], timing["fixed"])
        try:
            decision, failed = self.monitor.process(sample), None
        except RuleError as exc:  # strict=True
            decision, failed = Decision(step=sample.step, epoch=sample.epoch), exc
        # A rank-local failure (a rule over a rank-local statistic) must end every rank, or the
        # others would wait in their next collective until the process group times out.
        if self.monitor.engine.strict and self._any_rank(failed is not None):
            raise failed or RuleError("a rule failed on another rank (strict=True); see that rank's error")
        if self.on_sample is not None and sample.stats:
            self.on_sample(sample, decision.findings)
        stop, switch_off = self.agree(decision.stop is not None, self.collector_broken())
        if switch_off:
            self.switch_off_collector()
        decision = self.monitor.agreed(decision, self._any_rank, stop=stop)
        self.monitor.execute(decision, self.sink)  # type: ignore[arg-type]

    def _any_rank(self, flag: bool) -> bool:
        return self.ranks.any(flag)

    def agree(self, stop: bool, broken: bool) -> tuple[bool, bool]:
        """(stop, switch the collector off), each true on every rank when it is true on any.

        This costs no collective beyond the stop decision that every flush makes anyway: that one
        boolean decision asks "stop or broken?", and only when some rank says yes (a rule fired, a
        part failed: rare) do one or two more tell the two apart. Every rank takes the same branch.
        """
        if not self._any_rank(stop or broken):
            return False, False
        if not self._any_rank(broken):
            return True, False
        return self._any_rank(stop), True

    def collector_broken(self) -> bool:
        """Whether this rank's collector must go: building, preparing or flushing it failed, or (DDP)
        a part failed that would put this rank's gathered statistics out of step with the others'."""
        guard = self.monitor.guard
        if not (guard.ok(COLLECTOR) and guard.ok(FLUSH)):
            return True
        return self.ranks.world_size > 1 and self.collector is not None and self.collector.failed_shared

    def switch_off_collector(self) -> None:
        """No more statistics in this run: hooks removed, nothing collected or gathered. Under DDP
        every rank does this at the same decision, so the ranks keep doing the same collectives."""
        where = "here" if self.collector_broken() else "on another rank"
        collector, self.collector, self._pending = self.collector, None, None
        if collector is not None:
            collector.detach()
        if self.ranks.world_size > 1:
            self.monitor.guard.fail(COLLECTOR, RuntimeError(
                f"a part of it failed {where}; it is off on every rank so that the ranks stay in step"))


def _drop_gradients(optimizer: Any) -> None:
    """Leave this step's update out: the optimizer skips parameters without a gradient, and its
    state (Adam's moments and step counts) stays as it was."""
    optimizer = getattr(optimizer, "_optimizer", optimizer)  # LightningOptimizer -> torch optimizer
    for group in optimizer.param_groups:
        for param in group["params"]:
            param.grad = None
