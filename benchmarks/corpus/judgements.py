"""What a person made of each finding on a healthy run and of each twin the expected rules missed,
after looking at the run's loss curves and statistics. The report prints these beside the
measurements; a finding or a miss not listed here shows as "not judged yet".

Example:
    >>> judgement("lightning/gpt2", "class_imbalance").startswith("false alarm")
    True
    >>> judgement("lightning/gpt2", "tree_depth")
    'not judged yet'
"""

from __future__ import annotations

_EARLY_CONFUSION = ("false alarm: fires while the model has not started to separate the classes (validations "
                    "at steps 64-256 of a run whose validation loss then falls); the rule judges the first "
                    "validations as if training were over")

#: (healthy entry, rule) -> judgement
HEALTHY: dict[tuple[str, str], str] = {
    ("lightning/mobilenet_v2", "classifier_confusion"):
        _EARLY_CONFUSION + " (MobileNetV2 at width 0.35 sits at chance for ~150 steps, then val loss 1.39 -> 1.15)",
    ("lightning/vit", "classifier_confusion"):
        _EARLY_CONFUSION + " (ViT's usual slow start: loss flat at ln 4 for ~150 steps, then 0.44; val 0.61)",
    ("lightning/bert", "vanishing_gradient"):
        "false alarm: mean |grad| 2-7e-8 on attention query/key weights (HF init std 0.02) in a run that reaches "
        "val loss 0.05; query/key gradients are small by construction while attention logits are small; the "
        "absolute threshold 1e-7 (and the ratio 1e-5) are too strict for them",
    ("lightning/gpt2", "class_imbalance"):
        "false alarm: the labels of a causal LM are next-token ids (vocabulary 64, under the 1024-class cut-off), "
        "Zipf-distributed like any text; token frequencies are not classes to balance",
    ("lightning/mobilenet_v3_batch8", "dead_relu"):
        "probably harmless: 67% of the squeeze-excitation's reduce ReLU units inactive at step 80 (batch 8); "
        "dead SE units are common and the net reaches val loss 0.01; a true observation, not a fault",
    ("lightning/autoencoder", "overtraining"):
        "false alarm: the validation BCE still falls (0.6556 -> 0.6493 over the 5 validations), by under 1% per "
        "validation, as a loss with a large irreducible part does; the training loss fell only 2% meanwhile",
    ("lightning/gan", "underfit"):
        "false alarm: a GAN's generator loss is not meant to fall (it rose 0.58 -> 1.16 as the discriminator "
        "learned); underfit reads it as a plateau at 201% of its start",
    ("keras/resnet_rescaling", "not_normalized"):
        "false alarm: the model's first layer is Rescaling(1/255); 0-255 pixels are what Keras' image pipeline "
        "hands over and the model scales them itself (the same happens with keras.applications models that "
        "include their preprocessing)",
    ("keras/resnet_rescaling", "classifier_confusion"):
        _EARLY_CONFUSION + " (val loss 2.5 at step 32, 0.19 at the end)",
    ("keras/iris_mlp", "overfit"):
        "probably true: the 15-row validation loss climbs from 0.18 to 0.31 over the last 40 epochs while the "
        "training loss falls to 0.02; the open question is whether a 15-row estimate should alarm at all",
    ("keras/iris_mlp", "overtraining"): "probably true: as overfit on this run",
    ("xgboost/breast_cancer", "overfit"):
        "false alarm for boosting: the training logloss of boosted trees goes to ~0 (0.016 on 426 rows) by design, "
        "so the relative gap (353%) says nothing; early stopping (40 rounds) is in charge of the run",
    ("xgboost/breast_cancer", "overtraining"):
        "redundant: validation logloss flat since round 99; the run's own early stopping ends it 40 rounds later",
    ("xgboost/diabetes", "overtraining"):
        "probably true (mild): validation RMSE rises 58.2 -> 61.7 after round 30 while the training RMSE keeps "
        "falling; the run has no early stopping",
    ("xgboost/diabetes", "overfit"): "probably true (mild): as overtraining on this run; the gap reaches 58%",
    ("xgboost/make_regression", "overtraining"):
        "false alarm: validation RMSE keeps improving (40.6 -> 39.7) by under 1% per 5 validations (50 rounds); "
        "early stopping (30 rounds) saw improvement and kept going",
}

_DIED = ("the network died instead of exploding: dead_relu and vanishing_gradient fired at steps 20-40 (dead_relu's "
         "suggestion names the learning rate); the relative test of exploding_gradient starts after 5 samples "
         "(step 50), when the gradient norm had already collapsed, and the norm never reached max_norm 1e4")

#: twin -> why the expected rules missed it
TWINS: dict[str, str] = {
    "lightning/resnet+lr_x100": _DIED,
    "lightning/mobilenet_v3_batch8+lr_x100": _DIED,
    "keras/mobilenet_v3_blocks+lr_x100": _DIED + "; sigmoid_saturation fired on the SE's hard-sigmoid",
    "xgboost/diabetes+noise_columns":
        "low_feature_importance silent: trees split on the noise columns of 442 rows, so each keeps more than the "
        "0.1% 'useless' share of the gain and the top 3 features hold under 90%; overfit and overtraining fired",
    "xgboost/wine+noisy_labels":
        "early stopping (20 rounds) ended training at round 34, before overfit's patience of 3 validations "
        "(the gap was 94% at round 19 and 167% at 29)",
}


def judgement(entry: str, rule: str) -> str:
    """The judgement of ``rule``'s finding on the healthy ``entry``."""
    return HEALTHY.get((entry, rule), "not judged yet")


def miss(twin: str) -> str:
    """Why the expected rules missed ``twin``."""
    return TWINS.get(twin, "not judged yet")
