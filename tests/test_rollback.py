"""The `rollback` action, framework-free: the monitor's decision, its record, `max_rollbacks`."""

from tripwire import Monitor
from tripwire.rules.loss_spike import LossSpike
from tripwire.stats import Sample


class Sink:
    checkpoint_suffix, checkpoint_root = ".pt", "."

    def __init__(self, kept):
        self.kept, self.stopped, self.asked = kept, None, []

    def stop(self, finding):
        self.stopped = finding

    def save_checkpoint(self, path):
        raise AssertionError("no checkpoint action here")

    def rollback(self, step):
        self.asked.append(step)
        return self.kept


def spike_at(step):
    rule = LossSpike("loss_spike", LossSpike.Params())
    key = {n.stat: n.key for n in rule.needs()}
    return Sample(step, stats={key["spike_count"]: {None: 1.0}, key["spike_max_z"]: {None: 40.0},
                               key["spike_last_step"]: {None: float(step)}})


def calm_at(step):
    rule = LossSpike("loss_spike", LossSpike.Params())
    key = {n.stat: n.key for n in rule.needs()}
    return Sample(step, stats={key["spike_count"]: {None: 0.0}, key["spike_max_z"]: {None: 1.0}})


def test_a_rollback_is_a_finding_and_max_rollbacks_then_stops():
    monitor = Monitor({"rules": {"loss_spike": {"actions": [{"rollback": {"max_rollbacks": 1}}]}}}, log_dir=False,
                      remediations=("rollback",))
    sink = Sink(kept=(100, 150))
    monitor.execute(monitor.process(spike_at(150)), sink)
    done = monitor.findings[-1]
    assert sink.asked == [150] and sink.stopped is None and monitor.rollbacks == 1
    assert done.kind == "rollback" and done.evidence["skipped"] == [101, 150] and done.severity == "info"
    assert "restored" in done.message and "101-150" in done.message
    monitor.execute(monitor.process(calm_at(160)), sink)
    monitor.execute(monitor.process(spike_at(200)), sink)
    assert sink.asked == [150] and sink.stopped is not None and sink.stopped.step == 200
    assert monitor.stopped_by.kind == "loss_spike"
    monitor.close(print_summary=False)


def test_no_state_old_enough_is_logged_and_training_goes_on(caplog):
    monitor = Monitor({"rules": {"loss_spike": {"actions": ["rollback"]}}}, log_dir=False, remediations=("rollback",))
    sink = Sink(kept=None)
    monitor.execute(monitor.process(spike_at(30)), sink)
    assert sink.stopped is None and monitor.rollbacks == 0
    assert [f.kind for f in monitor.findings] == ["loss_spike"]
    assert "no training state kept before it" in caplog.text
    monitor.close(print_summary=False)


def test_a_rollback_finding_survives_the_record_next_to_its_cause(tmp_path):
    from tripwire.record import Run

    monitor = Monitor({"rules": {"loss_spike": {"actions": ["rollback"]}}}, log_dir=str(tmp_path), run_name="r",
                      remediations=("rollback",))
    monitor.execute(monitor.process(spike_at(150)), Sink(kept=(100, 150)))
    monitor.close(print_summary=False)
    assert [f.kind for f in Run(tmp_path / "r").findings] == ["loss_spike", "rollback"]
