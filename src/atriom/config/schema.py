"""The configuration schema: Hydra structured configs (dataclasses).

``conf/`` (YAML, Hydra groups) is composed into ``params.yaml``; both are validated against
these classes, so a typo in a key or a value of the wrong type fails with the key's full
name. Plug-in sections (``_target_`` plus the component's own arguments) are open
dictionaries here; the component's constructor checks its own arguments.

The schema holds keys and types only: every value is ``???`` (required) here and set in
``conf/``, the single source of values, so ``params.yaml`` always names every key (and
DVC's own composition, which does not know this schema, writes the same file).

Which stage reads what (and so which sections each DVC stage declares as params):

* ``reservoir`` stage: ``seed``, ``reservoir``
* ``conduit`` stage: ``conduit``
* ``active`` stage: ``seed``, ``model``, ``active``

``project`` only names things in MLflow and ``paths`` only places outputs; neither changes
what a stage computes, so they are not stage params.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class ProjectConfig:
    name: str = MISSING
    #: MLflow experiment that every stage run of this project is logged to.
    experiment: str = MISSING


@dataclass
class PathsConfig:
    reservoir: str = MISSING
    conduit: str = MISSING
    active: str = MISSING


@dataclass
class ReservoirConfig:
    #: Dataset source plug-in: ``_target_`` plus its arguments.
    dataset: dict[str, Any] = MISSING


@dataclass
class SplitConfig:
    train: float = MISSING
    val: float = MISSING
    test: float = MISSING
    #: Mixed into each file's hash; change it to draw a different split. Independent of
    #: ``seed``, so runs with different seeds are evaluated on the same test set.
    salt: str = MISSING


@dataclass
class SamplerConfig:
    #: Frames per clip fed to the model.
    num_frames: int = MISSING
    #: Step between sampled frames.
    stride: int = MISSING


@dataclass
class PreviewConfig:
    clips_per_class: int = MISSING
    frames: int = MISSING
    #: Height in pixels of each thumbnail in the contact sheet.
    thumb: int = MISSING


@dataclass
class ConduitConfig:
    split: SplitConfig = field(default_factory=SplitConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)


@dataclass
class ModelConfig:
    """A video transformer built from a config (no download)."""

    name: str = MISSING
    family: str = MISSING
    image_size: int = MISSING
    num_frames: int = MISSING
    patch_size: int = MISSING
    tubelet_size: int = MISSING
    hidden_size: int = MISSING
    num_hidden_layers: int = MISSING
    num_attention_heads: int = MISSING
    intermediate_size: int = MISSING
    #: Attention projections LoRA adapts in this family (VideoMAE: query/value;
    #: transformers 5 ViT: q_proj/v_proj).
    lora_targets: list[str] = MISSING
    image_mean: list[float] = MISSING
    image_std: list[float] = MISSING


@dataclass
class PeftConfig:
    method: str = MISSING
    r: int = MISSING
    alpha: int = MISSING
    dropout: float = MISSING
    target_modules: list[str] = MISSING


@dataclass
class EarlyStoppingConfig:
    metric: str = MISSING
    mode: str = MISSING
    patience: int = MISSING
    min_delta: float = MISSING


@dataclass
class ActiveConfig:
    peft: PeftConfig = field(default_factory=PeftConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    epochs: int = MISSING
    #: Micro-batch per optimizer forward pass.
    batch_size: int = MISSING
    #: Samples per optimizer step; gradient accumulation makes up the difference.
    effective_batch_size: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    warmup_ratio: float = MISSING
    max_grad_norm: float = MISSING
    num_workers: int = MISSING


@dataclass
class AtriomConfig:
    project: ProjectConfig = field(default_factory=ProjectConfig)
    seed: int = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    reservoir: ReservoirConfig = field(default_factory=ReservoirConfig)
    conduit: ConduitConfig = field(default_factory=ConduitConfig)
    active: ActiveConfig = field(default_factory=ActiveConfig)


#: The params.yaml sections each stage reads (and declares in dvc.yaml).
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "reservoir": ("seed", "reservoir"),
    "conduit": ("conduit",),
    "active": ("seed", "model", "active"),
}

#: The upstream phases whose outputs (and so MLflow runs) each stage consumes.
STAGE_UPSTREAM: dict[str, tuple[str, ...]] = {
    "reservoir": (),
    "conduit": ("reservoir",),
    "active": ("conduit", "reservoir"),
}
