"""What the shipped pretrained base buys: LoRA vs full fine-tuning vs LoRA on a random base.

Every variant is the real Active stage (``atriom run active`` with overrides) on the same
Reservoir + Conduit outputs of the default configuration, prepared once in a temporary
directory. Variants:

  lora         the default recipe (conf/active + conf/active/peft/lora.yaml)
  lora-qv      LoRA on the attention's query/value only (the usual VideoMAE choice)
  full         full fine-tuning of the pretrained base (every weight trains)
  random-lora  the default recipe on the same architecture with random weights: the
               collected model directory's weights are replaced by a fresh initialisation
               drawn from the seed (the control -- what pretraining buys)

Each variant runs once per seed (``seed=N`` changes initialisation of the head/adapters and
the data order; the data stay the same). The table reports mean and range of test accuracy,
trainable parameters, training seconds and the peak resident memory of the training process
(``wait4``'s ``ru_maxrss``: the whole ``atriom run active`` process, imports and evaluation
included).

    python benchmarks/finetune.py                       # writes its section of docs/benchmarks.md
    python benchmarks/finetune.py --seeds 0 --variants lora,full --out -
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, atriom_env, prepare_project, write_section

SECTION = "## Fine-tuning: LoRA, full, random base"

VARIANTS: dict[str, list[str]] = {
    "lora": [],
    "lora-qv": ["active.peft.target_modules=[query,value]"],
    "full": ["active.peft.method=full", "active.peft.target_modules=[]", "active.lr=1e-3"],
    "random-lora": [],
}


def randomise_model(model_dir: Path, seed: int) -> None:
    """Overwrite the collected base's weights with a fresh initialisation of its config,
    drawn from ``seed`` (each seed of the variant trains on its own random base)."""
    import torch
    from transformers import AutoConfig, AutoModelForVideoClassification

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForVideoClassification.from_config(config)
    model.save_pretrained(model_dir, safe_serialization=True)


def run_variant(project: Path, name: str, seed: int) -> dict:
    """One ``atriom run active`` in its own process; its peak RSS comes from ``wait4``."""
    env = atriom_env()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            ["atriom", "run", "active", f"seed={seed}", "active.resume=never", *VARIANTS[name]],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if process.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"{name} seed {seed} failed:\n{tail}")
    metrics = json.loads((project / "data" / "active" / "metrics.json").read_text())
    return {
        "variant": name,
        "seed": seed,
        "test_accuracy": metrics["test"]["accuracy"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        "test_n": metrics["test"]["n"],
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "trainable_params": metrics["trainable_params"],
        "total_params": metrics["total_params"],
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": wall,
        # ru_maxrss is in KiB on Linux: the training process's peak resident memory.
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def table(rows: list[dict], variants: list[str]) -> str:
    lines = [
        "| variant | test accuracy, mean (min–max) | test macro-F1, mean | trainable / total params "
        "| epochs run (best) | train s, mean | peak RSS, max |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in variants:
        mine = [r for r in rows if r["variant"] == name]
        acc = [r["test_accuracy"] for r in mine]
        epochs = [f"{r['epochs_run']} ({r['best_epoch']})" for r in mine]
        lines.append(
            f"| {name} | {statistics.mean(acc):.3f} ({min(acc):.3f}–{max(acc):.3f}) "
            f"| {statistics.mean(r['test_macro_f1'] for r in mine):.3f} "
            f"| {mine[0]['trainable_params']:,} / {mine[0]['total_params']:,} "
            f"| {', '.join(epochs)} "
            f"| {statistics.mean(r['train_seconds'] for r in mine):.0f} "
            f"| {max(r['peak_rss_mib'] for r in mine):.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated (default: %(default)s)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="'-': print")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="atriom-finetune-") as tmp:
        project = prepare_project(Path(tmp))
        model_dir = project / "data" / "reservoir" / "model"
        pretrained = Path(tmp) / "pretrained-model"
        shutil.copytree(model_dir, pretrained)
        for name in variants:
            for seed in seeds:
                shutil.rmtree(model_dir)
                shutil.copytree(pretrained, model_dir)
                if name == "random-lora":
                    randomise_model(model_dir, seed)
                row = run_variant(project, name, seed)
                rows.append(row)
                print(json.dumps(row), flush=True)
        test_n = rows[0]["test_n"]

    # The command that reproduces the table: every argument but --out and its value.
    kept, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            kept.append(arg)
    command = " ".join(["python benchmarks/finetune.py", *kept])
    body = (
        f"{SECTION}\n\n"
        f"The default dataset (synthetic motion patterns, {test_n} test clips) through the real "
        "Active stage; the base is the shipped `tiny_videomae` "
        "(`src/atriom/models/tiny_videomae/README.md`). Seeds "
        f"{', '.join(map(str, seeds))}; one CPU run per cell.\n\n"
        f"{table(rows, variants)}\n\n"
        f"Command: `{command}` — {platform.processor() or platform.machine()}, "
        f"{time.strftime('%Y-%m-%d')}.\n"
    )
    if args.out == "-":
        print(body)
    else:
        write_section(Path(args.out), SECTION, body)
        print(f"wrote {SECTION!r} into {args.out}")


if __name__ == "__main__":
    main()
