"""Model building: the collected pretrained base, wrapped by a PEFT method."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atriom.errors import ConfigError

PEFT_METHODS = ("lora", "dora", "ia3", "full")


def _label_kwargs(label_map: Mapping[str, int]) -> dict[str, Any]:
    return {
        "num_labels": len(label_map),
        "label2id": dict(label_map),
        "id2label": {i: label for label, i in label_map.items()},
    }


def load_base(model_dir: Path, label_map: Mapping[str, int], quantization: str = "none"):
    """The collected pretrained base with a fresh classification head for ``label_map``.

    With a 4/8-bit plan (CUDA) the base loads quantised and is prepared for k-bit training.
    """
    from transformers import AutoModelForVideoClassification
    from transformers.utils import logging as hf_logging

    quant = quantisation_config(quantization)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the replaced head is expected, not news
    try:
        model = AutoModelForVideoClassification.from_pretrained(
            model_dir,
            ignore_mismatched_sizes=True,
            **({"quantization_config": quant, "device_map": {"": 0}} if quant else {}),
            **_label_kwargs(label_map),
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model


def random_base(model_dir: Path, label_map: Mapping[str, int]):
    """The same architecture, randomly initialised (the baseline LoRA cannot rescue)."""
    from transformers import AutoConfig, AutoModelForVideoClassification

    config = AutoConfig.from_pretrained(model_dir, **_label_kwargs(label_map))
    return AutoModelForVideoClassification.from_config(config)


def _check_targets(model, targets: list[str], key: str) -> None:
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        leaves = {n.rsplit(".", 1)[-1] for n in names}
        hint = sorted(
            leaves
            & {"query", "key", "value", "q_proj", "k_proj", "v_proj", "dense", "qkv", "fc1", "fc2"}
        )
        raise ConfigError(
            f"{key}: {missing} not found in the model (it has e.g. {hint}); set them in conf/active/peft/."
        )


def apply_peft(model, peft_cfg: Mapping[str, Any]):
    """Wrap ``model`` with the configured method; the classifier head is always trained.

    ``lora`` and ``dora`` (LoRA with weight decomposition) adapt ``target_modules`` with rank
    ``r``; ``ia3`` learns scaling vectors on ``target_modules`` (``feedforward_modules``
    scaled on their input); ``full`` trains every weight.
    """
    method = peft_cfg["method"]
    if method not in PEFT_METHODS:
        raise ConfigError(f"active.peft.method: {method!r} is not one of {list(PEFT_METHODS)}.")
    if method == "full":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    from peft import IA3Config, LoraConfig, get_peft_model

    targets = list(peft_cfg["target_modules"])
    _check_targets(model, targets, "active.peft.target_modules")
    if method == "ia3":
        feedforward = list(peft_cfg.get("feedforward_modules") or [])
        _check_targets(model, feedforward, "active.peft.feedforward_modules")
        config = IA3Config(
            target_modules=targets, feedforward_modules=feedforward, modules_to_save=["classifier"]
        )
    else:
        config = LoraConfig(
            r=peft_cfg["r"],
            lora_alpha=peft_cfg["alpha"],
            lora_dropout=peft_cfg["dropout"],
            target_modules=targets,
            use_dora=method == "dora",
            modules_to_save=["classifier"],
        )
    return get_peft_model(model, config)


def quantisation_config(mode: str):
    """bitsandbytes settings for a 4/8-bit base (CUDA only; the device plan decides)."""
    if mode == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401
        import torch
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise ConfigError(
            f"the device plan asks for {mode} quantisation, which needs bitsandbytes: `pip install bitsandbytes`, "
            "or set reservoir.device.quantization=none."
        ) from exc
    if mode == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def count_parameters(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
