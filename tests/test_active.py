"""Active: PEFT methods, curriculum, accumulation, determinism, resume after SIGKILL, exports."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from atriom.active.curriculum import Curriculum, available, manifest_difficulty, pacing_fraction
from atriom.active.model import apply_peft, count_parameters, load_base
from atriom.active.train import Trainer, distillation_loss
from atriom.config import load_params
from atriom.errors import ConfigError, DataError
from atriom.models import builtin_model_path
from atriom.stage import run_stage
from conftest import clean_env, mlflow_runs, run

LABELS = {"a": 0, "b": 1, "c": 2}


# -- curriculum ----------------------------------------------------------------------------


def test_pacing_functions():
    kw = {"start": 0.2, "full_at": 0.5, "steps": 2}
    assert [pacing_fraction("none", e, 10, **kw) for e in (0, 5)] == [1.0, 1.0]
    assert [round(pacing_fraction("linear", e, 10, **kw), 3) for e in (0, 1, 5, 9)] == [
        0.2,
        0.36,
        1.0,
        1.0,
    ]
    assert round(pacing_fraction("root", 1, 10, **kw), 3) == round(0.2 + 0.8 * np.sqrt(0.2), 3)
    assert [pacing_fraction("step", e, 10, **kw) for e in (0, 2, 3, 5)] == pytest.approx(
        [0.2, 0.2, 0.6, 1.0]
    )
    assert pacing_fraction("root", 1, 10, **kw) > pacing_fraction("linear", 1, 10, **kw)
    with pytest.raises(ConfigError, match="pacing"):
        pacing_fraction("cosine", 0, 10, **kw)


def test_available_takes_the_easiest_of_every_class():
    difficulty = np.array([0.9, 0.1, 0.5, 0.3, 0.8, 0.2])
    labels = [0, 0, 0, 1, 1, 1]
    assert available(difficulty, labels, 0.3).tolist() == [1, 5]  # ceil(0.9) = 1 per class
    assert available(difficulty, labels, 0.6).tolist() == [1, 2, 3, 5]
    assert available(difficulty, labels, 1.0).tolist() == [0, 1, 2, 3, 4, 5]
    curriculum = Curriculum(
        {"pacing": "linear", "start": 0.3, "full_at": 0.5, "steps": 1}, difficulty, labels, 4
    )
    assert [len(curriculum.indices(e)) for e in range(4)] == [2, 4, 6, 6]


def test_manifest_difficulty_names_the_missing_key():
    assert manifest_difficulty([{"meta": {"difficulty": 0.5}}], "difficulty").tolist() == [0.5]
    with pytest.raises(DataError, match=r"meta\.speed"):
        manifest_difficulty([{"clip": "x.mp4", "meta": {}}], "speed")


def test_distillation_loss_blends_hard_and_soft_targets():
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 0])
    hard = torch.nn.functional.cross_entropy(student, labels)
    assert torch.allclose(distillation_loss(student, teacher, labels, 2.0, 0.0), hard)
    assert torch.allclose(
        distillation_loss(teacher, teacher, labels, 3.0, 1.0), torch.tensor(0.0), atol=1e-6
    )
    assert distillation_loss(student, teacher, labels, 2.0, 1.0) > 0


# -- PEFT methods --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("lora", {}),
        ("dora", {}),
        (
            "ia3",
            {
                "target_modules": ["key", "value", "output.dense"],
                "feedforward_modules": ["output.dense"],
            },
        ),
        ("full", {}),
    ],
)
def test_peft_methods_train_the_head_and_few_or_all_weights(method, extra):
    base = load_base(builtin_model_path(), LABELS)
    total = count_parameters(base)["total"]
    cfg = {
        "method": method,
        "r": 4,
        "alpha": 8,
        "dropout": 0.0,
        "target_modules": ["query", "value"],
        "feedforward_modules": [],
        **extra,
    }
    model = apply_peft(base, cfg)
    params = count_parameters(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable)
    if method == "full":
        assert params["trainable"] == total
    else:
        assert 0 < params["trainable"] < total * 0.2
        marker = {"lora": "lora_", "dora": "lora_magnitude", "ia3": "ia3_l"}[method]
        assert any(marker in n for n in trainable)


def test_unknown_lora_target_is_a_config_error():
    with pytest.raises(ConfigError, match="q_proj"):
        apply_peft(
            load_base(builtin_model_path(), LABELS),
            {"method": "lora", "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj"]},
        )


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the CPU path; the CUDA path runs on GPU machines"
)
def test_quantisation_is_refused_cleanly_without_bitsandbytes_or_cuda():
    from atriom.active.model import quantisation_config

    assert quantisation_config("none") is None
    with pytest.raises(ConfigError, match=r"bitsandbytes|quantization=none"):
        quantisation_config("4bit")


# -- accumulation ----------------------------------------------------------------------------


class _Data(torch.utils.data.Dataset):
    def __init__(self, n=8):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 6, generator=g)
        self.y = torch.arange(n) % 3

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return len(self.y)

    def __getitem__(self, item):
        _, i = item  # (epoch, index) from the training sampler
        return {"pixel_values": self.x[i], "labels": self.y[i], "sample": torch.tensor(i)}


class _Model(torch.nn.Module):
    """Deterministic (no dropout), with the HF output interface the loop uses."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
        )

    def forward(self, pixel_values, labels=None):
        logits = self.net(pixel_values)
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SimpleNamespace(logits=logits, loss=loss)


def _fit(per_device: int, accumulation: int) -> dict[str, torch.Tensor]:
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=accumulation)
    cfg = SimpleNamespace(
        epochs=2,
        lr=0.05,
        weight_decay=0.0,
        warmup_ratio=0.0,
        max_grad_norm=1e9,
        early_stopping=SimpleNamespace(metric="train_loss", mode="min", patience=99, min_delta=0.0),
        checkpoint=SimpleNamespace(every_steps=0, keep=1),
        distill=None,
    )
    data = _Data()
    none = Curriculum(
        {"pacing": "none", "start": 1.0, "full_at": 1.0, "steps": 1}, None, data.y.tolist(), 2
    )
    trainer = Trainer(
        _Model(),
        data,
        torch.utils.data.DataLoader([data[(0, i)] for i in range(8)], batch_size=8),
        accelerator=accelerator,
        cfg=cfg,
        class_names=["a", "b", "c"],
        curriculum=none,
        per_device_batch_size=per_device,
        num_workers=0,
        seed=0,
        run_dir=None,
    )
    trainer.fit()
    # Trainer keeps the best epoch's weights: compare the last epoch's too, via the history.
    assert trainer.result.optimizer_steps == 2
    return {k: v.clone() for k, v in accelerator.unwrap_model(trainer.model).state_dict().items()}


def test_accumulating_micro_batches_matches_one_big_batch():
    """4 micro-batches of 2 with accumulation 4 == one batch of 8 (to float32 rounding: atol 1e-6)."""
    big = _fit(per_device=8, accumulation=1)
    small = _fit(per_device=2, accumulation=4)
    for name in big:
        assert torch.allclose(big[name], small[name], atol=1e-6), name
    assert not torch.allclose(big["net.0.weight"], _Model().net[0].weight)


# -- the stage -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A tiny project with Reservoir and Conduit done (Active is what each test runs)."""
    from conftest import compose_tiny, copy_project

    root = copy_project(tmp_path_factory.mktemp("active") / "project")
    compose_tiny(root, "active.epochs=5", "active.early_stopping.patience=5")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("MLFLOW_")}
    try:
        run_stage("reservoir", root=root)
        run_stage("conduit", root=root)
    finally:
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            del os.environ[key]
        os.environ.update(saved)
    return root


@pytest.fixture
def project_copy(prepared, tmp_path):
    return shutil.copytree(prepared, tmp_path / "project", symlinks=True)


def _metrics(root):
    return json.loads((root / "data" / "active" / "metrics.json").read_text())


def _comparable(metrics):
    return {k: metrics[k] for k in ("test", "val", "best_epoch", "epochs_run", "optimizer_steps")}


@pytest.mark.slow
def test_same_seed_same_metrics_and_curriculum_logged(project_copy):
    overrides = ["active/curriculum=linear"]
    run(["atriom", "compose", "experiment=tiny", "active.epochs=3", *overrides], cwd=project_copy)
    run(["atriom", "run", "active", "active.resume=never"], cwd=project_copy)
    first = _metrics(project_copy)
    history = (project_copy / "data" / "active" / "history.csv").read_text().splitlines()
    run(["atriom", "run", "active", "active.resume=never"], cwd=project_copy)
    assert _comparable(_metrics(project_copy)) == _comparable(first)
    assert (project_copy / "data" / "active" / "history.csv").read_text().splitlines() == history
    fractions = [float(line.split(",")[-1]) for line in history[1:]]
    assert (
        fractions[0] == pytest.approx(0.4)
        and fractions == sorted(fractions)
        and fractions[-1] == 1.0
    )


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_the_same_metrics(project_copy):
    run(["atriom", "run", "active", "active.resume=never"], cwd=project_copy)
    uninterrupted = _metrics(project_copy)
    runs_dir = project_copy / "data" / "active" / "runs"
    before = set(runs_dir.iterdir())

    proc = subprocess.Popen(
        [sys.executable, "-m", "atriom", "run", "active", "active.resume=never"],
        cwd=project_copy,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        new = [p for p in runs_dir.iterdir() if p not in before]
        if new and len(list(new[0].glob("checkpoints/step_*/COMPLETE"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    (killed_dir,) = [p for p in runs_dir.iterdir() if p not in before]
    assert not (killed_dir / "COMPLETE").exists()
    killed_run = json.loads((killed_dir / "run.json").read_text())["attempts"][0]["mlflow_run_id"]

    resumed = run(["atriom", "run", "active"], cwd=project_copy)
    metrics = _metrics(project_copy)
    assert metrics["run_dir"] == killed_dir.name and metrics["resumed_from"].startswith("step_")
    assert _comparable(metrics) == _comparable(uninterrupted), resumed.stderr[-2000:]
    attempts = json.loads((killed_dir / "run.json").read_text())["attempts"]
    assert len(attempts) == 2 and attempts[0]["mlflow_run_id"] == killed_run
    runs = {r.info.run_id: r for r in mlflow_runs(project_copy)}
    assert runs[killed_run].info.status == "KILLED"
    assert runs[killed_run].data.tags["atriom.resumed_by"] == attempts[1]["mlflow_run_id"]
    assert runs[attempts[1]["mlflow_run_id"]].data.tags["atriom.resumed_from"] == killed_run
    assert runs[attempts[1]["mlflow_run_id"]].info.status == "FINISHED"


@pytest.mark.slow
def test_two_processes_on_cpu(project_copy):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    result = run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "atriom",
            "run",
            "active",
            "active.epochs=2",
        ],
        cwd=project_copy,
    )
    actives = [r for r in mlflow_runs(project_copy) if r.data.tags["atriom.phase"] == "active"]
    assert len(actives) == 1, result.stderr[-3000:]
    (active,) = actives
    assert active.info.status == "FINISHED"
    assert active.data.tags["atriom.num_processes"] == "2"
    assert active.data.params["active.batch.num_processes"] == "2"
    metrics = _metrics(project_copy)
    assert metrics["test"]["n"] == len(
        [
            r
            for r in json.loads(
                (project_copy / "data" / "conduit" / "clip_index.json").read_text()
            )["samples"]
            if r["split"] == "test"
        ]
    )


# -- exports (on the session pipeline) ------------------------------------------------------------


def _run_dir(pipeline):
    (run_dir,) = [
        p for p in (pipeline / "data" / "active" / "runs").iterdir() if (p / "COMPLETE").exists()
    ]
    return run_dir


def test_exports_card_and_confusion_matrix(pipeline):
    run_dir = _run_dir(pipeline)
    card = (run_dir / "model_card.md").read_text()
    metrics = _metrics(pipeline)
    for needle in (
        "## Intended use",
        "## Data",
        "## Evaluation",
        "## Limitations",
        "Apache-2.0",
        f"Test set: {metrics['test']['n']} videos",
    ):
        assert needle in card, needle
    assert (
        json.loads((pipeline / "data" / "reservoir" / "dataset.json").read_text())["digest"][:16]
        in card
    )
    assert (run_dir / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert not (run_dir / "checkpoints").exists()  # dropped once the run finished
    info = json.loads((run_dir / "merged_model" / "inference.json").read_text())
    conduit = load_params(pipeline).conduit
    assert info["labels"] == sorted(info["labels"])
    assert info["sampler"] == OmegaConf.to_container(conduit.sampler, resolve=True)
    assert info["test_time"] == list(conduit.augment.test_time)
    if info["test_time"]:
        assert f"x {2 ** len(info['test_time'])} test-time views" in card


def test_adapter_loads_with_plain_peft_in_a_fresh_process(pipeline):
    run_dir = _run_dir(pipeline)
    code = f"""
import json, torch
from peft import PeftModel
from transformers import AutoModelForVideoClassification
adapters = {str(run_dir / "best_model_adapters")!r}
base_path = json.load(open(adapters + '/adapter_config.json'))['base_model_name_or_path']
base = AutoModelForVideoClassification.from_pretrained(base_path, num_labels=5, ignore_mismatched_sizes=True)
model = PeftModel.from_pretrained(base, adapters).eval()
merged = AutoModelForVideoClassification.from_pretrained({str(run_dir / "merged_model")!r}).eval()
x = torch.randn(2, 8, 3, 64, 64)
with torch.no_grad():
    print(float((model(pixel_values=x).logits - merged(pixel_values=x).logits).abs().max()))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=pipeline, env=clean_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (
        float(out.stdout.strip().splitlines()[-1]) < 1e-4
    )  # adapters on the base == the merged model


def test_registered_pyfunc_round_trip_in_a_fresh_process(pipeline):
    video = sorted((pipeline / "data" / "reservoir" / "videos" / "circular").glob("*.mp4"))[0]
    code = f"""
import mlflow, pandas as pd
from atriom.reader import read_frames
client = mlflow.MlflowClient()
version = client.get_model_version_by_alias('atriom-demo', 'candidate')
model = mlflow.pyfunc.load_model('models:/atriom-demo@candidate')
by_path = model.predict(pd.DataFrame({{'video': [{str(video)!r}]}}))
by_frames = model.predict(read_frames({str(video)!r}, list(range(16))))
print(version.version, by_path['label'][0], by_frames['label'][0], round(float(by_path.drop(columns='label').sum(axis=1)[0]), 4))
print((by_path.drop(columns='label') - by_frames.drop(columns='label')).abs().max().max())
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd="/",
        capture_output=True,
        text=True,
        env=clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{pipeline / 'mlflow.db'}"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    first, second = out.stdout.strip().splitlines()[-2:]
    version, label_path, label_frames, total = first.split()
    assert version == str(_metrics(pipeline)["registered_version"])
    assert label_path == label_frames and label_path in {
        "circular",
        "jitter",
        "linear",
        "oscillate",
        "zigzag",
    }
    assert float(total) == pytest.approx(1.0)
    assert float(second) < 1e-5


def test_predict_cli_on_a_generated_clip(pipeline, tmp_path):
    from atriom.reservoir.synthetic import SyntheticVideos

    clips = SyntheticVideos(
        classes=["zigzag", "linear"], clips_per_class=1, num_frames=16, size=64, fps=8
    ).collect(tmp_path, seed=999)
    out = run(["atriom", "predict", *(str(c.path) for c in clips)], cwd=pipeline)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    for line, clip in zip(lines, clips, strict=True):
        path, label, probability = line.split("\t")
        assert path == str(clip.path) and label in {
            "circular",
            "jitter",
            "linear",
            "oscillate",
            "zigzag",
        }
        assert 0.2 <= float(probability) <= 1.0
    as_json = json.loads(
        run(["atriom", "predict", "--json", str(clips[0].path)], cwd=pipeline).stdout.splitlines()[
            0
        ]
    )
    assert sum(as_json["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    missing = run(["atriom", "predict", "nope.mp4"], cwd=pipeline, check=False)
    assert missing.returncode == 2 and "nope.mp4" in missing.stderr
