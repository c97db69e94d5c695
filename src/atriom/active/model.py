"""Model building: the base video transformer from config, wrapped by a PEFT method."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atriom.errors import ConfigError

PEFT_METHODS = ("lora", "dora", "full")


def build_base(model_cfg: Mapping[str, Any], label_map: Mapping[str, int]):
    """A ``VideoMAEForVideoClassification`` built from ``model_cfg`` (no download)."""
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    if model_cfg["family"] != "videomae":
        raise ConfigError(
            f"model.family: {model_cfg['family']!r} is not supported yet; use 'videomae'."
        )
    config = VideoMAEConfig(
        image_size=model_cfg["image_size"],
        patch_size=model_cfg["patch_size"],
        num_channels=3,
        num_frames=model_cfg["num_frames"],
        tubelet_size=model_cfg["tubelet_size"],
        hidden_size=model_cfg["hidden_size"],
        num_hidden_layers=model_cfg["num_hidden_layers"],
        num_attention_heads=model_cfg["num_attention_heads"],
        intermediate_size=model_cfg["intermediate_size"],
        use_mean_pooling=True,
        num_labels=len(label_map),
        label2id=dict(label_map),
        id2label={i: label for label, i in label_map.items()},
    )
    return VideoMAEForVideoClassification(config)


def apply_peft(model, peft_cfg: Mapping[str, Any]):
    """Wrap ``model`` with the configured method; the classifier head is always trained."""
    method = peft_cfg["method"]
    if method == "full":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    if method not in PEFT_METHODS:
        raise ConfigError(f"active.peft.method: {method!r} is not one of {list(PEFT_METHODS)}.")
    from peft import LoraConfig, get_peft_model

    targets = list(peft_cfg["target_modules"])
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ConfigError(
            f"active.peft.target_modules: {missing} not found in the model "
            f"(set model.lora_targets; this model has e.g. {sorted(present & {'query', 'value', 'q_proj', 'v_proj', 'key', 'k_proj'})})."
        )
    config = LoraConfig(
        r=peft_cfg["r"],
        lora_alpha=peft_cfg["alpha"],
        lora_dropout=peft_cfg["dropout"],
        target_modules=targets,
        use_dora=method == "dora",
        modules_to_save=["classifier"],
    )
    return get_peft_model(model, config)


def count_parameters(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
