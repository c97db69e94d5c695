"""Engine overhead: time per optimizer step of ATRIOM's training loop vs a bare PyTorch loop.

Both loops train the same model (the built-in base + LoRA), on the same batches (decoded once
and held in memory, so video decoding is out of the picture), with the same micro-batch,
gradient accumulation, clipping, AdamW and cosine schedule. Repetitions are interleaved
(engine, bare, engine, bare, ...) so machine noise hits both alike; the table reports
medians and the ratio engine / bare measured in the same run.

    python benchmarks/train.py                      # writes the section into docs/benchmarks.md
    python benchmarks/train.py --quick --out -      # smoke run, print only

Data: a tiny project (Reservoir + Conduit on the default synthetic dataset) built in a
temporary directory with the real `atriom run` commands.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from _common import (  # benchmarks/ is on sys.path when run as a script
    ROOT,
    prepare_project,
    write_section,
)

SECTION = "## Training engine overhead"


class CachedClips:
    """The training clips decoded once; items as the engine's sampler asks for them."""

    def __init__(self, dataset):
        self.items = [dataset[i] for i in range(len(dataset))]

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item):
        return self.items[item[1] if isinstance(item, tuple) else item]


def build_model(project: Path, label_map: dict[str, int]):
    from atriom.active.model import apply_peft, load_base
    from atriom.artifacts import MODEL_MANIFEST, model_dir, read_output

    manifest = read_output(project / "data" / "reservoir", MODEL_MANIFEST, "reservoir")
    base = load_base(model_dir(manifest, project), label_map)
    peft = {
        "method": "lora",
        "r": 8,
        "alpha": 16,
        "dropout": 0.05,
        "target_modules": manifest["lora_targets"],
    }
    return apply_peft(base, peft)


def engine_epoch_times(
    model, data, cfg, per_device: int, accumulation: int, epochs: int
) -> list[float]:
    """Seconds per optimizer step of each epoch, through atriom.active.train.Trainer."""
    import torch
    from accelerate import Accelerator

    from atriom.active.curriculum import Curriculum
    from atriom.active.train import Trainer

    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=accumulation)
    labels = [int(x["labels"]) for x in data.items]
    curriculum = Curriculum(
        {"pacing": "none", "start": 1.0, "full_at": 1.0, "steps": 1}, None, labels, epochs
    )
    val = torch.utils.data.DataLoader(data.items[:per_device], batch_size=per_device)
    trainer = Trainer(
        model,
        data,
        val,
        accelerator=accelerator,
        cfg=cfg,
        class_names=[str(i) for i in range(max(labels) + 1)],
        curriculum=curriculum,
        per_device_batch_size=per_device,
        num_workers=0,
        seed=0,
        run_dir=None,
    )
    times = []
    for epoch in range(epochs):
        trainer.epoch, trainer.batches_done, trainer.epoch_loss, trainer.epoch_seen = (
            epoch,
            0,
            0.0,
            0,
        )
        steps_before = trainer.result.optimizer_steps
        started = time.perf_counter()
        trainer._train_epoch()
        times.append(
            (time.perf_counter() - started) / (trainer.result.optimizer_steps - steps_before)
        )
    return times


def bare_epoch_times(
    model, data, cfg, per_device: int, accumulation: int, epochs: int
) -> list[float]:
    """The same training written directly in PyTorch."""
    import math

    import numpy as np
    import torch
    from transformers import get_cosine_schedule_with_warmup

    batches_per_epoch = math.ceil(len(data) / per_device)
    total = math.ceil(batches_per_epoch / accumulation) * epochs
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    collate = torch.utils.data.default_collate
    times = []
    model.train()
    for epoch in range(epochs):
        order = np.random.default_rng([0, epoch]).permutation(len(data))
        batches = [order[i : i + per_device] for i in range(0, len(order), per_device)]
        steps = 0
        started = time.perf_counter()
        for index, batch_ids in enumerate(batches):
            batch = collate([data[int(i)] for i in batch_ids])
            loss = (
                model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss
                / accumulation
            )
            loss.backward()
            if (index + 1) % accumulation == 0 or index + 1 == len(batches):
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                steps += 1
        times.append((time.perf_counter() - started) / steps)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small data, 2 repetitions")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file, or - to print"
    )
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats

    import torch

    from atriom.artifacts import CLIP_INDEX, LABEL_MAP, MODEL_MANIFEST, read_output
    from atriom.conduit.dataset import ClipDataset
    from atriom.runtime import seed_everything

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="atriom-bench-train-") as tmp:
        project = prepare_project(Path(tmp), 40)
        conduit, reservoir = project / "data" / "conduit", project / "data" / "reservoir"
        index = read_output(conduit, CLIP_INDEX, "conduit")
        label_map = read_output(conduit, LABEL_MAP, "conduit")
        prep = read_output(reservoir, MODEL_MANIFEST, "reservoir")["preprocessing"]
        data = CachedClips(
            ClipDataset.from_index(index, "train", project, prep, seed=0, train=False)
        )
        seed_everything(0, torch=True)
        initial = build_model(project, label_map)

    per_device, accumulation = 8, 2
    cfg = SimpleNamespace(
        epochs=args.epochs,
        lr=2e-3,
        weight_decay=0.01,
        warmup_ratio=0.1,
        max_grad_norm=1.0,
        early_stopping=SimpleNamespace(metric="train_loss", mode="min", patience=99, min_delta=0.0),
        checkpoint=SimpleNamespace(every_steps=0, keep=1),
        distill=None,
    )
    engine, bare = [], []
    for _ in range(repeats):  # interleaved: the same machine state for both
        engine += engine_epoch_times(
            copy.deepcopy(initial), data, cfg, per_device, accumulation, args.epochs
        )[1:]
        bare += bare_epoch_times(
            copy.deepcopy(initial), data, cfg, per_device, accumulation, args.epochs
        )[1:]
    e, b = statistics.median(engine), statistics.median(bare)
    command = "python benchmarks/train.py" + (" --quick" if args.quick else "")
    targets = "/".join(sorted(initial.peft_config["default"].target_modules))
    table = (
        f"{SECTION}\n\n"
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads).\n"
        f"Built-in base + LoRA r=8 on {targets}, {len(data)} training clips held in memory, micro-batch {per_device}, "
        f"accumulation {accumulation}; medians over {repeats} interleaved repetitions x {args.epochs - 1} timed epochs "
        "(the first epoch of each repetition is warm-up).\n\n"
        "| loop | ms per optimizer step (median) | min | max |\n|---|---|---|---|\n"
        f"| ATRIOM engine (Accelerate + `atriom.active.train.Trainer`) | {e * 1000:.1f} | {min(engine) * 1000:.1f} | {max(engine) * 1000:.1f} |\n"
        f"| bare PyTorch loop | {b * 1000:.1f} | {min(bare) * 1000:.1f} | {max(bare) * 1000:.1f} |\n\n"
        f"**Ratio engine / bare: {e / b:.3f}** (target <= 1.05).\n"
    )
    print(table)
    if args.out != "-":
        write_section(Path(args.out), SECTION, table)


if __name__ == "__main__":
    main()
