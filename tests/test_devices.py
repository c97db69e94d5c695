"""The device plan is a pure function of (resource facts, config): every branch on fabricated facts."""

import pytest

from atriom.devices import GIB, RequirementError, batch_plan, check_requirements, plan_devices

DEVICE = {
    "prefer": "auto",
    "precision": "auto",
    "quantization": "none",
    "num_workers": "auto",
    "per_device_batch_size": 8,
}
REQUIRE = {"min_ram_gb": 2, "min_disk_gb": 1, "gpu": "optional", "min_gpu_memory_gb": 0}


def facts(gpus=(), cores=2, ram_gb=24, free_gb=50, mps=False):
    return {
        "cpu": {"usable_cores": cores, "logical_cores": cores},
        "memory": {"total_bytes": ram_gb * GIB, "available_bytes": ram_gb * GIB},
        "disk": {"data": {"path": "/data", "free_bytes": free_gb * GIB, "total_bytes": 100 * GIB}},
        "cuda": {"available": bool(gpus), "gpus": list(gpus)},
        "mps": {"available": mps},
    }


def gpu(name="A100", memory_gb=40, bf16=True):
    return {
        "name": name,
        "memory_bytes": memory_gb * GIB,
        "compute_capability": "8.0" if bf16 else "7.5",
        "bf16": bf16,
    }


def test_cpu_plan_is_fp32_with_cores_minus_one_workers():
    plan = plan_devices(facts(cores=2), DEVICE)
    assert (plan.device, plan.dtype, plan.quantization, plan.num_processes, plan.num_workers) == (
        "cpu",
        "fp32",
        "none",
        1,
        1,
    )


def test_cuda_without_bf16_uses_fp16():
    plan = plan_devices(facts(gpus=[gpu("T4", 16, bf16=False)], cores=8), DEVICE)
    assert (plan.device, plan.dtype, plan.num_workers) == ("cuda", "fp16", 7)


def test_cuda_with_bf16_uses_bf16_and_keeps_asked_quantisation():
    plan = plan_devices(facts(gpus=[gpu()]), {**DEVICE, "quantization": "4bit"})
    assert (plan.device, plan.dtype, plan.quantization) == ("cuda", "bf16", "4bit")


def test_multi_gpu_plan_and_accumulation_reach_the_effective_batch():
    plan = plan_devices(facts(gpus=[gpu(), gpu(), gpu(), gpu()], cores=16), DEVICE)
    assert (plan.num_processes, plan.num_workers) == (4, 3)
    batches = batch_plan(plan, 64)
    assert (
        batches.per_device_batch_size,
        batches.gradient_accumulation_steps,
        batches.effective_batch_size,
    ) == (8, 2, 64)
    # One GPU of the four lacking bf16 makes the whole plan fp16.
    mixed = plan_devices(facts(gpus=[gpu(), gpu(bf16=False)]), DEVICE)
    assert mixed.dtype == "fp16"


@pytest.mark.parametrize(
    ("per_device", "processes", "effective", "expected"),
    [
        (8, 1, 16, (8, 2, 16)),
        (8, 1, 20, (8, 3, 24)),
        (8, 1, 4, (4, 1, 4)),
        (8, 2, 8, (4, 1, 8)),
        (2, 1, 1, (1, 1, 1)),
    ],
)
def test_batch_plan_arithmetic(per_device, processes, effective, expected):
    plan = {
        "device": "cpu",
        "dtype": "fp32",
        "quantization": "none",
        "num_processes": processes,
        "num_workers": 0,
        "per_device_batch_size": per_device,
    }
    b = batch_plan(plan, effective)
    assert (
        b.per_device_batch_size,
        b.gradient_accumulation_steps,
        b.effective_batch_size,
    ) == expected
    assert b.effective_batch_size >= effective


def test_quantisation_and_half_precision_are_turned_off_on_cpu_with_a_note():
    plan = plan_devices(facts(), {**DEVICE, "quantization": "8bit", "precision": "bf16"})
    assert (plan.quantization, plan.dtype) == ("none", "fp32")
    assert any("8bit" in n for n in plan.notes) and any("bf16" in n for n in plan.notes)


def test_mps_is_used_when_present():
    assert plan_devices(facts(mps=True), DEVICE).device == "mps"


@pytest.mark.parametrize(
    ("device", "match"),
    [
        ({"prefer": "cuda"}, "prefer=cuda"),
        ({"prefer": "tpu"}, "prefer"),
        ({"precision": "fp8"}, "precision"),
        ({"num_workers": -1}, "num_workers"),
    ],
)
def test_impossible_device_settings_name_the_key(device, match):
    with pytest.raises(RequirementError, match=match):
        plan_devices(facts(), {**DEVICE, **device})


def test_bf16_forced_on_old_gpu_is_refused():
    with pytest.raises(RequirementError, match="bf16"):
        plan_devices(facts(gpus=[gpu(bf16=False)]), {**DEVICE, "precision": "bf16"})


def test_requirements_met_on_a_capable_machine():
    assert (
        check_requirements(
            facts(gpus=[gpu()]), {**REQUIRE, "gpu": "required", "min_gpu_memory_gb": 24}
        )
        == []
    )


def test_unmet_requirements_say_what_was_found_and_how_to_relax():
    problems = check_requirements(
        facts(ram_gb=1, free_gb=0.5), {**REQUIRE, "gpu": "required", "min_gpu_memory_gb": 80}
    )
    text = "\n".join(problems)
    assert (
        "RAM: need >= 2 GiB, found 1.0 GiB" in text and "reservoir.requirements.min_ram_gb" in text
    )
    assert "need >= 1 GiB free, found 0.5 GiB" in text
    assert "GPU: required, found none" in text and "gpu=optional" in text
    small = check_requirements(
        facts(gpus=[gpu("T4", 16, False)]), {**REQUIRE, "min_gpu_memory_gb": 24}
    )
    assert small == [
        "GPU memory: need >= 24 GiB per GPU, found T4 16.0 GiB (relax with reservoir.requirements.min_gpu_memory_gb=<GiB>)"
    ]
