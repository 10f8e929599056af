"""What every diffusers backbone shares: registration, options, errors, schedules from configs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from fifo_core.api import load_backbone
from fifo_core.cli import main
from fifo_core.errors import ConfigError
from fifo_core.plugins import Plugins
from fifo_core.schedule import DiscreteSchedule, FlowMatchingSchedule
from fifo_diffusers import plugin
from fifo_diffusers.common import schedule_from_scheduler

NAMES = {"zeroscope-v2-576w", "modelscope-t2v", "animatediff-v1-5", "wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "latte-1", "ltx-video"}


def test_the_plugin_registers_every_family_without_importing_diffusers() -> None:
    code = (
        "import sys; from fifo_core.plugins import Plugins; import fifo_diffusers.plugin as p; "
        "m = Plugins(load_entry_points=False); m.register(p, name='diffusers'); names = sorted(m.backbones()); "
        "print(names); assert 'diffusers' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in NAMES)


def test_backbones_command_shows_each_models_defaults() -> None:
    result = CliRunner().invoke(main, ["backbones", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)  # warnings about other plugins go to stderr
    zeroscope, wan = listed["zeroscope-v2-576w"]["defaults"], listed["wan2.1-t2v-1.3b"]["defaults"]
    assert (zeroscope["width"], zeroscope["height"], zeroscope["window"], zeroscope["frames_per_latent"]) == (576, 320, 24, 1)
    assert (wan["width"], wan["height"], wan["window"], wan["sampler"], wan["frames_per_latent"]) == (832, 480, 21, "euler", 4)
    assert listed["zeroscope-v2-576w"]["plugin"] == "diffusers"


def test_unknown_options_are_refused_with_the_list_of_valid_ones() -> None:
    manager = Plugins(load_entry_points=False)
    manager.register(plugin, name="diffusers")
    with pytest.raises(ConfigError, match="dtype"):
        manager.backbone("zeroscope").create({"precision": "fp16"})


def test_unknown_components_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown component.*'unett'"):
        load_backbone("zeroscope", {"model": str(tmp_path), "components": {"unett": "x"}})


def test_a_folder_without_the_model_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--option model=") as error:
        load_backbone("wan", {"model": str(tmp_path / "nothing-here"), "local_files_only": True, "device": "cpu"})
    assert "scheduler" in str(error.value) and "components=" in str(error.value)


def test_discrete_schedules_follow_the_scheduler_config() -> None:
    from diffusers import DDIMScheduler, DDPMScheduler

    scaled = schedule_from_scheduler(DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012))
    assert torch.equal(scaled.alphas_cumprod, DiscreteSchedule.scaled_linear().alphas_cumprod)
    v = schedule_from_scheduler(DDPMScheduler(beta_schedule="linear", prediction_type="v_prediction"))
    assert v.prediction_type == "v_prediction"
    assert torch.equal(v.alphas_cumprod, DiscreteSchedule.linear().alphas_cumprod)
    cosine = schedule_from_scheduler(DDPMScheduler(beta_schedule="squaredcos_cap_v2"))
    torch.testing.assert_close(cosine.alphas_cumprod, DDPMScheduler(beta_schedule="squaredcos_cap_v2").alphas_cumprod.double())


def test_flow_schedules_take_the_configs_shift_or_an_explicit_one() -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    wan = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    assert schedule_from_scheduler(wan) == FlowMatchingSchedule(shift=3.0)
    assert schedule_from_scheduler(FlowMatchEulerDiscreteScheduler(shift=2.5)) == FlowMatchingSchedule(shift=2.5)
    dynamic = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
    with pytest.raises(ConfigError, match="flow_shift"):
        schedule_from_scheduler(dynamic)
    assert schedule_from_scheduler(dynamic, shift=4.0).shift == 4.0
