"""This project's own tests: its configuration and its plug-ins (the library has its own)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from atriom.config import check_params, compose
from omegaconf import OmegaConf

from atriom_demo.scorers import MotionEnergyScorer

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_is_composed_from_conf():
    assert check_params(ROOT) is None, "params.yaml is stale: run `atriom compose`"


@pytest.mark.parametrize(
    "group", sorted(p.stem for p in (ROOT / "conf" / "active" / "curriculum").glob("*.yaml"))
)
def test_every_curriculum_option_composes(group):
    cfg = compose(ROOT, [f"active/curriculum={group}"])
    assert OmegaConf.missing_keys(cfg) == set()


def test_the_example_plug_in_is_wired_through_conf():
    from hydra.utils import get_class

    cfg = compose(ROOT, ["active/curriculum=motion_energy"])
    assert get_class(cfg.active.curriculum.difficulty.scorer._target_) is MotionEnergyScorer


def test_motion_energy_ranks_still_clips_harder():
    still = torch.zeros(8, 3, 16, 16)
    moving = torch.stack([torch.full((3, 16, 16), float(t % 2)) for t in range(8)])
    dataset = [{"pixel_values": still}, {"pixel_values": moving}]
    difficulty = MotionEnergyScorer().score(model=None, dataset=dataset, accelerator=None)
    assert difficulty.shape == (2,) and np.argmax(difficulty) == 0
