"""The data rules judge the first sampled batches: a feature far off scale is flagged at the first
sample where the rule has seen ``min_samples`` rows, not whenever the data totals next reach the host."""

import pytest

from keras_kit import classification, fired, fit, mlp


@pytest.mark.parametrize("batch_size", [32, 48])
def test_not_normalized_fires_at_the_first_sample_with_min_samples_rows(batch_size):
    x, y = classification(n=4096)
    x[:, 2] = x[:, 2] + 300.0  # one feature with mean 300 from the first batch on
    tw, _, _ = fit(mlp(), x, y, config={"rules": {"not_normalized": {}}}, interval=5, epochs=1,
                     batch_size=batch_size, shuffle=False)
    first = 5 * (-(-500 // batch_size) - 1)  # steps 0, 5, 10, ... are sampled, one batch each
    found = fired(tw)["not_normalized"][0]
    assert found.step == first
    assert found.evidence["features"][0]["feature"] == "2"
    assert found.evidence["features"][0]["mean"] == pytest.approx(300.0, abs=1.0)
