"""The three stages run in process on the tiny profile: outputs, manifests, lineage, MLflow."""

import csv
import json

import pytest
from omegaconf import OmegaConf

from atriom.config import load_params
from atriom.io import read_manifest, sha256_file
from conftest import mlflow_runs


def test_reservoir_outputs(pipeline):
    out = pipeline / "data" / "reservoir"
    for name in (
        "env.json",
        "env_packages.csv",
        "resources.json",
        "device_plan.json",
        "model.json",
        "dataset.json",
        "config.yaml",
        "reservoir.log",
    ):
        assert (out / name).is_file(), name
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["counts"] == {
        c: 10 for c in ("circular", "jitter", "linear", "oscillate", "zigzag")
    }
    clip = dataset["clips"][0]
    assert clip["path"].startswith("data/reservoir/videos/")
    assert sha256_file(pipeline / clip["path"]) == clip["sha256"]
    assert (clip["frames"], clip["width"], clip["height"], clip["codec"]) == (16, 64, 64, "h264")
    assert {"speed", "radius", "noise", "distractors", "difficulty"} <= set(clip["meta"])
    env = json.loads((out / "env.json").read_text())
    assert any(p["name"] == "atriom" and p["editable"] for p in env["packages"])


def test_manifests_hash_every_file_and_chain_run_ids(pipeline):
    manifests = {p: read_manifest(pipeline / "data" / p) for p in ("reservoir", "conduit")}
    manifests["active"] = read_manifest(pipeline / "data" / "active")
    for phase, manifest in manifests.items():
        base = pipeline / "data" / phase
        for entry in manifest["files"]:
            assert sha256_file(base / entry["path"]) == entry["sha256"], (phase, entry["path"])
    assert (
        manifests["conduit"]["inputs"]["reservoir"]["mlflow_run_id"]
        == manifests["reservoir"]["mlflow_run_id"]
    )
    assert (
        manifests["active"]["inputs"]["conduit"]["mlflow_run_id"]
        == manifests["conduit"]["mlflow_run_id"]
    )
    assert (
        manifests["conduit"]["inputs"]["reservoir"]["manifest_digest"]
        == manifests["reservoir"]["digest"]
    )


def test_conduit_outputs(pipeline):
    out = pipeline / "data" / "conduit"
    index = json.loads((out / "clip_index.json").read_text())
    stats = json.loads((out / "stats.json").read_text())
    assert sum(stats["totals"].values()) == len(index["samples"]) == 50
    conduit = load_params(pipeline).conduit
    assert index["sampler"] == OmegaConf.to_container(conduit.sampler, resolve=True)
    assert index["augment"] == OmegaConf.to_container(conduit.augment, resolve=True)
    views = conduit.sampler.eval_clips if conduit.sampler.eval == "multi_clip" else 1
    assert all(
        len(s["views"]) == views
        and all(len(v) == index["num_frames"] == 8 for v in s["views"])
        and s["views"] == sorted(s["views"])
        for s in index["samples"]
    )
    assert json.loads((out / "label_map.json").read_text())["circular"] == 0
    for name in ("contact_sheet_train", "contact_sheet_val", "contact_sheet_test", "class_balance"):
        png = out / "previews" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_active_outputs_and_adapter(pipeline):
    out = pipeline / "data" / "active"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and metrics["test"]["n"] > 0
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) == metrics["epochs_run"] >= 1
    assert set(rows[0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "val_macro_f1",
        "lr",
        "curriculum_fraction",
    }
    (run_dir,) = (out / "runs").iterdir()
    assert run_dir.name.startswith("run_") and len(run_dir.name) == len("run_20260101_000000")
    adapters = run_dir / "best_model_adapters"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in adapters.iterdir()
    }


def test_adapter_loads_with_plain_peft_and_reproduces_test_accuracy(pipeline):
    import torch
    from peft import PeftModel
    from transformers import VideoMAEForVideoClassification

    from atriom.conduit.dataset import ClipDataset

    out = pipeline / "data" / "active"
    (run_dir,) = (out / "runs").iterdir()
    adapters = run_dir / "best_model_adapters"
    base_location = json.loads((adapters / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ]
    assert base_location == "data/reservoir/model"  # portable: project-relative
    label_map = json.loads((run_dir / "label_map.json").read_text())
    base = VideoMAEForVideoClassification.from_pretrained(
        pipeline / base_location, num_labels=len(label_map), ignore_mismatched_sizes=True
    )
    model = PeftModel.from_pretrained(base, adapters).eval()
    index = json.loads((pipeline / "data" / "conduit" / "clip_index.json").read_text())
    rows = [r for r in index["samples"] if r["split"] == "test"]
    prep = json.loads((pipeline / "data" / "reservoir" / "model.json").read_text())["preprocessing"]
    ds = ClipDataset.from_index(index, "test", pipeline, prep, seed=0)
    items = [ds[i] for i in range(len(ds))]
    batch = torch.stack([item["pixel_values"] for item in items])  # (views, T, C, H, W)
    # The evaluation protocol, written out independently of atriom.conduit.transforms: every
    # combination of the test-time transforms, logits averaged over them and over a video's
    # segments.
    ops = {
        "hflip": lambda x: x.flip(-1),
        "vflip": lambda x: x.flip(-2),
        "transpose": lambda x: x.transpose(-1, -2),
        "reverse": lambda x: x.flip(1),
    }
    names = index["augment"]["test_time"]
    with torch.no_grad():
        logits = torch.zeros(len(items), len(label_map))
        for mask in range(2 ** len(names)):
            view = batch
            for bit, name in enumerate(names):
                if mask >> bit & 1:
                    view = ops[name](view)
            logits += model(pixel_values=view.contiguous()).logits
    samples = torch.stack([item["sample"] for item in items])
    per_video = torch.stack([logits[samples == int(r["id"])].mean(0) for r in rows])
    labels = torch.tensor([r["label_id"] for r in rows])
    accuracy = (per_video.argmax(-1) == labels).float().mean().item()
    metrics = json.loads((out / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])


def test_three_finished_runs_linked_by_lineage_tags(pipeline):
    runs = {r.data.tags["atriom.phase"]: r for r in mlflow_runs(pipeline)}
    assert set(runs) == {"reservoir", "conduit", "active"}
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    assert runs["conduit"].data.tags["atriom.upstream.reservoir"] == runs["reservoir"].info.run_id
    assert runs["active"].data.tags["atriom.upstream.conduit"] == runs["conduit"].info.run_id
    assert runs["active"].data.tags["atriom.upstream.reservoir"] == runs["reservoir"].info.run_id
    assert "test_accuracy" in runs["active"].data.metrics
    assert runs["active"].data.params["active.peft.r"] == "8"
    assert runs["active"].data.params["active.batch.gradient_accumulation_steps"] == "2"
    assert runs["reservoir"].data.params["model.name"] == "tiny_videomae"
    for phase, run in runs.items():
        manifest = read_manifest(pipeline / "data" / phase)
        assert manifest["mlflow_run_id"] == run.info.run_id


def test_runs_hold_config_manifest_and_log_artifacts(pipeline):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{pipeline / 'mlflow.db'}")
    for run in mlflow_runs(pipeline):
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "manifest.json", "logs"} <= names, (
            run.data.tags["atriom.phase"],
            names,
        )
    assert (pipeline / "mlruns").is_dir()
