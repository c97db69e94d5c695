"""The configuration schema: Hydra structured configs (dataclasses).

``conf/`` (YAML, Hydra groups) is composed into ``params.yaml``; both are validated against
these classes, so a typo in a key or a value of the wrong type fails with the key's full
name. Plug-in sections (``_target_`` plus the component's own arguments) are open
dictionaries here; the component's constructor checks its own arguments.

The schema holds keys and types only: every value is ``???`` (required) here and set in
``conf/``, the single source of values, so ``params.yaml`` always names every key (and
DVC's own composition, which does not know this schema, writes the same file).

Which stage reads what (and so which sections each DVC stage declares as params):

* ``reservoir`` stage: ``seed``, ``model``, ``reservoir`` (it collects the model)
* ``conduit`` stage: ``conduit``
* ``active`` stage: ``seed``, ``active`` (the model and device plan come from Reservoir's files)

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
class EnvConfig:
    #: Environment variables worth recording; names that look like secrets are redacted.
    allowlist: list[str] = MISSING
    #: The lock file drift is measured against (relative to the project root; null: none).
    lock_file: str | None = MISSING
    #: ``warn`` or ``fail`` on ``pip check`` conflicts.
    conflicts: str = MISSING
    #: ``warn`` or ``fail`` on drift from the lock file.
    drift: str = MISSING
    #: How many timestamped ``env_<timestamp>.json`` reports to keep.
    history: int = MISSING


@dataclass
class RequirementsConfig:
    min_ram_gb: float = MISSING
    min_disk_gb: float = MISSING
    #: ``optional``, ``required`` or ``none`` (never use a GPU).
    gpu: str = MISSING
    min_gpu_memory_gb: float = MISSING


@dataclass
class DeviceConfig:
    #: ``auto``, ``cpu``, ``cuda`` or ``mps``.
    prefer: str = MISSING
    #: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
    precision: str = MISSING
    #: ``none``, ``8bit`` or ``4bit`` (CUDA only).
    quantization: str = MISSING
    #: DataLoader workers per process: ``auto`` or a number.
    num_workers: Any = MISSING
    #: Micro-batch per device per forward pass (what fits in memory).
    per_device_batch_size: int = MISSING


@dataclass
class ValidationConfig:
    #: ``skip`` (quarantine bad files and continue) or ``fail``.
    on_bad_file: str = MISSING


@dataclass
class ReservoirConfig:
    #: Dataset source plug-in: ``_target_`` plus its arguments.
    dataset: dict[str, Any] = MISSING
    env: EnvConfig = field(default_factory=EnvConfig)
    requirements: RequirementsConfig = field(default_factory=RequirementsConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)


@dataclass
class SplitConfig:
    train: float = MISSING
    val: float = MISSING
    test: float = MISSING
    #: Mixed into each file's hash; change it to draw a different split. Independent of
    #: ``seed``, so runs with different seeds are evaluated on the same test set.
    salt: str = MISSING
    #: The clip field that keeps clips together (``path``, or e.g. ``meta.source_video``).
    group_by: str = MISSING


@dataclass
class SamplerConfig:
    #: Frames per clip fed to the model.
    num_frames: int = MISSING
    #: Step between sampled frames.
    stride: int = MISSING
    #: ``random_segment`` or ``uniform``.
    train: str = MISSING
    #: ``centred``, ``uniform`` or ``multi_clip``.
    eval: str = MISSING
    #: Segments per video for ``multi_clip`` evaluation (logits averaged).
    eval_clips: int = MISSING


@dataclass
class AugmentConfig:
    #: Probability of flipping a training clip horizontally.
    hflip: float = MISSING
    #: Probability of flipping a training clip vertically.
    vflip: float = MISSING
    #: Probability of swapping a training clip's x and y axes.
    transpose: float = MISSING
    #: Probability of playing a training clip backwards.
    reverse: float = MISSING
    #: Maximum relative brightness change of a training clip (0: off).
    brightness: float = MISSING
    #: Test-time augmentation: evaluation and the exported model average the logits of every
    #: combination of these transforms (``hflip``, ``vflip``, ``transpose``, ``reverse``).
    test_time: list[str] = MISSING


@dataclass
class FrameCacheConfig:
    enabled: bool = MISSING
    dir: str = MISSING


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
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    frame_cache: FrameCacheConfig = field(default_factory=FrameCacheConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)


@dataclass
class PeftConfig:
    #: ``lora``, ``dora``, ``ia3`` or ``full``.
    method: str = MISSING
    r: int = MISSING
    alpha: int = MISSING
    dropout: float = MISSING
    target_modules: list[str] = MISSING
    #: IA3 only: the targets scaled on their input (feed-forward layers).
    feedforward_modules: list[str] = MISSING


@dataclass
class DifficultyConfig:
    #: ``manifest`` (a numeric clip ``meta`` field) or ``scorer`` (a plug-in).
    source: str = MISSING
    #: The ``meta`` field for ``source: manifest``.
    key: str = MISSING
    #: ``_target_`` and arguments of the scorer for ``source: scorer``.
    scorer: dict[str, Any] = MISSING


@dataclass
class CurriculumConfig:
    #: ``none``, ``linear``, ``root`` or ``step``.
    pacing: str = MISSING
    #: Fraction of the easiest samples (per class) available in the first epoch.
    start: float = MISSING
    #: Fraction of the epochs after which every sample is available.
    full_at: float = MISSING
    #: Stairs of the ``step`` pacing.
    steps: int = MISSING
    difficulty: DifficultyConfig = field(default_factory=DifficultyConfig)


@dataclass
class EarlyStoppingConfig:
    metric: str = MISSING
    mode: str = MISSING
    patience: int = MISSING
    min_delta: float = MISSING


@dataclass
class CheckpointConfig:
    #: Also checkpoint every this many optimizer steps (0: at epoch ends only).
    every_steps: int = MISSING
    #: Complete checkpoints kept while a run trains.
    keep: int = MISSING
    #: Keep the checkpoints of a finished run (they only serve resuming).
    keep_after_finish: bool = MISSING


@dataclass
class DistillConfig:
    #: A previous run's ``merged_model`` directory (null: no distillation).
    teacher: str | None = MISSING
    temperature: float = MISSING
    #: Weight of the distillation term against the cross-entropy.
    weight: float = MISSING


@dataclass
class RegistryConfig:
    #: Log the MLflow pyfunc model and register it with the ``candidate`` alias.
    enabled: bool = MISSING
    #: Registered model name (null: ``project.name``).
    name: str | None = MISSING


@dataclass
class ActiveConfig:
    peft: PeftConfig = field(default_factory=PeftConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    epochs: int = MISSING
    #: Samples per optimizer step; gradient accumulation over the device plan's
    #: per-device micro-batches makes it up.
    effective_batch_size: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    warmup_ratio: float = MISSING
    max_grad_norm: float = MISSING
    #: ``auto`` (continue the newest interrupted run with the same inputs), ``never``, or a
    #: run directory name.
    resume: str = MISSING
    #: Finished run directories kept under ``paths.active/runs``.
    keep_runs: int = MISSING


@dataclass
class AtriomConfig:
    project: ProjectConfig = field(default_factory=ProjectConfig)
    seed: int = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    #: Model source plug-in: ``_target_``, its arguments and what the model must be
    #: (``family``, ``num_frames``, ``image_size``, ``lora_targets``), checked by Reservoir.
    model: dict[str, Any] = MISSING
    reservoir: ReservoirConfig = field(default_factory=ReservoirConfig)
    conduit: ConduitConfig = field(default_factory=ConduitConfig)
    active: ActiveConfig = field(default_factory=ActiveConfig)


#: The params.yaml sections each stage reads (and declares in dvc.yaml).
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "reservoir": ("seed", "model", "reservoir"),
    "conduit": ("conduit",),
    "active": ("seed", "active"),
}

#: The upstream phases whose outputs (and so MLflow runs) each stage consumes.
STAGE_UPSTREAM: dict[str, tuple[str, ...]] = {
    "reservoir": (),
    "conduit": ("reservoir",),
    "active": ("conduit", "reservoir"),
}
