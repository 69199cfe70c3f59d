"""``transformers`` and ``timm`` cases of the compatibility matrix: one small model per family
from a tiny config with random weights (nothing is downloaded), trained for 3 steps inside the
same ``LightningModule`` as the ``torch.nn`` cases.

Text models read ``(N, 6)`` token ids, image models ``(N, 3, size, size)`` images in [0, 1];
the body returns the model's logits (or its mean last hidden state when it has no head). A
library that is not installed (or cannot be imported) makes its cases ``skipped``, with why.

Example:
    >>> [c.name for c in hub_cases()][:2]
    ['transformers BertForSequenceClassification', 'transformers DistilBertForSequenceClassification']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from _compat_torch import Case

TEXT = {"vocab_size": 50, "num_labels": 3, "pad_token_id": 0}
#: transformers: (model class, config class, config arguments).
TRANSFORMERS: list[tuple[str, str, dict[str, Any]]] = [
    ("BertForSequenceClassification", "BertConfig", {
        **TEXT, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
        "max_position_embeddings": 16}),
    ("DistilBertForSequenceClassification", "DistilBertConfig", {
        **TEXT, "dim": 16, "n_layers": 1, "n_heads": 2, "hidden_dim": 32, "max_position_embeddings": 16}),
    ("RobertaForSequenceClassification", "RobertaConfig", {
        **TEXT, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
        "max_position_embeddings": 20, "pad_token_id": 1}),
    ("AlbertForSequenceClassification", "AlbertConfig", {
        **TEXT, "embedding_size": 8, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 16}),
    ("ElectraForSequenceClassification", "ElectraConfig", {
        **TEXT, "embedding_size": 8, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 16}),
    ("DebertaV2ForSequenceClassification", "DebertaV2Config", {
        **TEXT, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
        "max_position_embeddings": 16}),
    ("GPT2ForSequenceClassification", "GPT2Config", {
        **TEXT, "n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 16}),
    ("LlamaForSequenceClassification", "LlamaConfig", {
        **TEXT, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "max_position_embeddings": 16}),
    ("MistralForSequenceClassification", "MistralConfig", {
        **TEXT, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "max_position_embeddings": 16}),
    ("BartModel", "BartConfig", {
        **TEXT, "d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
        "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "max_position_embeddings": 16,
        "eos_token_id": 2, "bos_token_id": 1}),
    ("T5EncoderModel", "T5Config", {
        "vocab_size": 50, "d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2}),
    ("ViTForImageClassification", "ViTConfig", {
        "image_size": 16, "patch_size": 8, "num_channels": 3, "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 32, "num_labels": 3}),
    ("ConvNextForImageClassification", "ConvNextConfig", {
        "num_channels": 3, "hidden_sizes": [8, 16], "depths": [1, 1], "num_stages": 2, "num_labels": 3}),
    ("ResNetForImageClassification", "ResNetConfig", {
        "num_channels": 3, "embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "num_labels": 3}),
]
#: timm: (model name, create_model arguments, image size).
TIMM: list[tuple[str, dict[str, Any], int]] = [
    ("resnet10t", {}, 32), ("mobilenetv3_small_050", {}, 32), ("efficientnet_b0", {}, 32),
    ("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8}, 32), ("convnext_atto", {}, 32),
]


class HubBody(nn.Module):
    """Calls a transformers model on ids (or pixels) and returns logits or pooled hidden states."""

    def __init__(self, model: nn.Module, images: bool) -> None:
        super().__init__()
        self.model, self.images = model, images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x) if self.images else self.model(input_ids=x)
        logits = getattr(out, "logits", None)
        return logits if logits is not None else out.last_hidden_state.mean(1)


def _transformers(model: str, config: str, kwargs: dict[str, Any]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import transformers

        cfg = getattr(transformers, config)(**kwargs)
        return HubBody(getattr(transformers, model)(cfg), images="image_size" in kwargs or "hidden_sizes" in kwargs)

    return make


def _timm(name: str, kwargs: dict[str, Any]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=3, **kwargs)

    return make


def _importable(module: str) -> str | None:
    """None when ``module`` imports, else why not."""
    try:
        __import__(module)
    except Exception as exc:  # noqa: BLE001 - a broken install (e.g. a torchvision built for CUDA) counts too
        return f"{module} cannot be imported here ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def hub_cases() -> list[Case]:
    """A case per transformers family and timm model; ``skipped`` where the library is missing."""
    out = []
    why = _importable("transformers")
    for model, config, kwargs in TRANSFORMERS:
        images = "image_size" in kwargs or "hidden_sizes" in kwargs
        kind = f"img{kwargs.get('image_size', 32)}" if images else "ints"
        case = Case("transformers", f"transformers {model}", kind, na=why, skipped=why is not None)
        case.make = _transformers(model, config, kwargs) if why is None else None
        out.append(case)
    why = _importable("timm")
    for name, kwargs, size in TIMM:
        case = Case("timm", f"timm {name}", f"img{size}", na=why, skipped=why is not None)
        case.make = _timm(name, kwargs) if why is None else None
        out.append(case)
    return out
