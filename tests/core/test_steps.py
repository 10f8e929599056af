"""The per-frame scheduler step and the level grid, against diffusers' schedulers frame by frame.

diffusers' ``step()`` takes one scalar timestep; the core steps a batch of frames that each sit at
their own level. Each test puts every frame of a batch at a different timestep taken from the
diffusers scheduler after ``set_timesteps(S)``, steps them at once with ``ddim_step`` and compares
with ``scheduler.step()`` called on each frame alone, with the same model output and noise.

diffusers' DDIM moves a frame from ``t`` to ``t - T // S``, which is the next grid timestep only
when S divides T (trailing/leading); the comparisons build the "after" levels the way diffusers
does, from the same alphas, and separate tests check the core's own ``LevelGrid`` where the two
chains coincide.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler

from fifo_core.schedule import DiscreteSchedule, FlowMatchingSchedule
from fifo_core.steps import FrameLevels, clean_and_noise_estimates, ddim_step, sampler_eta

from .fakes import RecordingBackbone, fake_sampler

T = 1000
FRAME = (3, 4, 5)
SD_BETAS = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def random_frames(count: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.randn(count, *FRAME, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def discrete_levels(alpha_bar: torch.Tensor) -> FrameLevels:
    alpha_bar = alpha_bar.to(torch.float64)
    return FrameLevels(signal=alpha_bar.sqrt(), noise=(1 - alpha_bar).sqrt(), alpha_bar=alpha_bar)


def ddim(prediction_type: str, spacing: str) -> DDIMScheduler:
    # diffusers' DDIM "leading" grid is only the reference's (1, 1+T/S, ...) with steps_offset=1.
    return DDIMScheduler(
        **SD_BETAS, prediction_type=prediction_type, set_alpha_to_one=True, clip_sample=False,
        timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0,
    )


# --------------------------------------------------------------------------------------------
# DDIM


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_step_equals_diffusers_frame_by_frame(prediction_type: str, eta: float, spacing: str) -> None:
    steps = 12
    scheduler = ddim(prediction_type, spacing)
    # In float64 on both sides the two must agree to rounding: this checks the formulas themselves.
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    count = len(timesteps)
    x, output, noise = (random_frames(count, torch.float64, seed) for seed in (1, 2, 3))
    previous = timesteps - T // steps
    abar = scheduler.alphas_cumprod
    now = discrete_levels(abar[timesteps])
    after = discrete_levels(torch.where(previous >= 0, abar[previous.clamp(min=0)], torch.ones(())))

    ours = ddim_step(x, output, now, after, prediction_type, eta, noise if eta > 0 else None)

    for frame, t in enumerate(timesteps.tolist()):
        theirs = scheduler.step(
            output[frame], t, x[frame], eta=eta, variance_noise=noise[frame] if eta > 0 else None
        ).prev_sample
        torch.testing.assert_close(ours[frame], theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_step_on_the_core_grid_equals_diffusers_in_float32(prediction_type: str, spacing: str) -> None:
    """The core's own schedule and LevelGrid against an unmodified float32 diffusers scheduler."""
    steps, eta = 20, 0.5  # 20 divides T, so diffusers' t - T // S is the next grid timestep
    scheduler = ddim(prediction_type, spacing)
    scheduler.set_timesteps(steps)
    grid = DiscreteSchedule.scaled_linear(prediction_type=prediction_type).grid(steps, spacing)
    assert torch.equal(grid.timesteps[1:].long(), scheduler.timesteps.flip(0))
    levels = torch.arange(steps, 0, -1)  # diffusers' timesteps, noisiest first, are levels S..1
    x, output, noise = (random_frames(steps, torch.float32, seed) for seed in (4, 5, 6))

    ours = ddim_step(x, output, FrameLevels.gather(grid, levels), FrameLevels.gather(grid, levels - 1), prediction_type, eta, noise)

    assert ours.dtype == torch.float32
    for frame, t in enumerate(scheduler.timesteps.tolist()):
        theirs = scheduler.step(output[frame], t, x[frame], eta=eta, variance_noise=noise[frame]).prev_sample
        # diffusers accumulates alpha-bar in float32 (relative error ~1e-6 after 1000 products),
        # then divides by sqrt(alpha-bar) ~ 0.07 at the top level: a few 1e-6 relative.
        torch.testing.assert_close(ours[frame], theirs, rtol=2e-5, atol=2e-5)


def test_core_schedules_are_diffusers_schedules() -> None:
    # Derived independently in numpy float64 from the betas' definitions.
    betas = np.linspace(0.00085**0.5, 0.012**0.5, T, dtype=np.float64) ** 2
    np.testing.assert_allclose(DiscreteSchedule.scaled_linear().alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-12)
    betas = np.linspace(0.0001, 0.02, T, dtype=np.float64)
    np.testing.assert_allclose(DiscreteSchedule.linear().alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-12)
    # diffusers computes the same in float32.
    torch.testing.assert_close(DiscreteSchedule.scaled_linear().alphas_cumprod.float(), DDIMScheduler(**SD_BETAS).alphas_cumprod, rtol=1e-5, atol=0)
    torch.testing.assert_close(DiscreteSchedule.linear().alphas_cumprod.float(), DDPMScheduler().alphas_cumprod, rtol=1e-5, atol=0)


# --------------------------------------------------------------------------------------------
# DDPM


@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddpm_is_ddim_with_eta_one_frame_by_frame(prediction_type: str, beta_schedule: str) -> None:
    steps = 10
    scheduler = DDPMScheduler(
        **(SD_BETAS if beta_schedule == "scaled_linear" else {}), prediction_type=prediction_type,
        clip_sample=False, variance_type="fixed_small",
    )
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    x, output = random_frames(steps, torch.float64, 7), random_frames(steps, torch.float64, 8)
    # diffusers draws each frame's noise as randn(frame shape) from the generator it is given.
    seeds = [100 + frame for frame in range(steps)]
    noise = torch.stack([torch.randn(FRAME, generator=torch.Generator().manual_seed(s), dtype=torch.float64) for s in seeds])
    abar = scheduler.alphas_cumprod
    previous = torch.stack([torch.as_tensor(scheduler.previous_timestep(t)) for t in timesteps])
    assert previous.tolist() == timesteps.tolist()[1:] + [-1], "diffusers' DDPM walks the grid it was given"
    now = discrete_levels(abar[timesteps])
    after = discrete_levels(torch.where(previous >= 0, abar[previous.clamp(min=0)], torch.ones(())))

    ours = ddim_step(x, output, now, after, prediction_type, sampler_eta("ddpm", 0.0), noise)

    for frame, t in enumerate(timesteps):
        generator = torch.Generator().manual_seed(seeds[frame])
        theirs = scheduler.step(output[frame], t, x[frame], generator=generator).prev_sample
        torch.testing.assert_close(ours[frame], theirs, rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------------------------
# Flow matching


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_euler_step_equals_diffusers_frame_by_frame(shift: float) -> None:
    steps = 10
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(steps)
    sigmas = scheduler.sigmas.double()  # steps + 1 values, ending at 0
    x, output = random_frames(steps, torch.float32, 9), random_frames(steps, torch.float32, 10)
    now = FrameLevels(signal=1 - sigmas[:-1], noise=sigmas[:-1], alpha_bar=None)
    after = FrameLevels(signal=1 - sigmas[1:], noise=sigmas[1:], alpha_bar=None)

    ours = ddim_step(x, output, now, after, "flow", sampler_eta("euler", 0.0))

    for frame, t in enumerate(scheduler.timesteps):
        scheduler._step_index = None  # diffusers tracks its position; each frame is a fresh start
        theirs = scheduler.step(output[frame], t, x[frame]).prev_sample
        torch.testing.assert_close(ours[frame], theirs, rtol=1e-6, atol=1e-6)


def test_flow_grid_equals_diffusers_without_shift() -> None:
    steps = 16
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
    scheduler.set_timesteps(steps)
    grid = FlowMatchingSchedule().grid(steps)
    torch.testing.assert_close(grid.noise[1:].flip(0), scheduler.sigmas[:-1].double(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grid.timesteps[1:].flip(0), scheduler.timesteps.double(), rtol=1e-6, atol=1e-4)


def test_flow_grid_shift_warps_a_uniform_grid_once() -> None:
    """A known, deliberate difference: with a shift, diffusers' set_timesteps spaces its grid
    uniformly down to the *already shifted* smallest training sigma and then shifts again, so its
    lowest sigma is shift(shift(1/T)). The core shifts a uniform grid on [1/T, 1] once. The step
    itself is the same (test above); this pins the core's grid and documents the difference."""
    steps, shift = 8, 3.0
    uniform = np.linspace(1 / T, 1.0, steps)
    expected = shift * uniform / (1 + (shift - 1) * uniform)
    np.testing.assert_allclose(FlowMatchingSchedule(shift=shift).grid_sigmas(steps).numpy(), expected, rtol=1e-12)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(steps)
    warp = lambda s: shift * s / (1 + (shift - 1) * s)  # noqa: E731
    assert float(scheduler.sigmas[-2]) == pytest.approx(warp(warp(1 / T)), rel=1e-5)
    assert float(scheduler.sigmas[0]) == pytest.approx(expected[-1]) == 1.0


# --------------------------------------------------------------------------------------------
# The grid


def diffusers_grid(spacing: str, steps: int, scheduler: DDIMScheduler) -> torch.Tensor:
    scheduler.set_timesteps(steps)
    return scheduler.timesteps.flip(0)


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_grid_timesteps_equal_diffusers_ddim(spacing: str) -> None:
    schedule = DiscreteSchedule.scaled_linear()
    scheduler = ddim("epsilon", spacing)
    mismatches = []
    for steps in range(1, T):
        theirs = diffusers_grid(spacing, steps, scheduler)
        if theirs.numel() == steps + 1 and int(theirs[0]) == -1:
            theirs = theirs[1:]  # diffusers' own float-arange overflow (trailing); not a grid level
        if not torch.equal(schedule.grid_timesteps(steps, spacing), theirs):
            mismatches.append(steps)
    assert mismatches == [], f"{len(mismatches)} grid sizes differ from diffusers, e.g. S = {mismatches[:8]}"


@pytest.mark.parametrize("steps", [1, 2, 10, 16, 64, 100, 250])
@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_grid_timesteps_equal_diffusers_for_common_sizes(spacing: str, steps: int) -> None:
    scheduler = ddim("epsilon", spacing)
    assert torch.equal(DiscreteSchedule.scaled_linear().grid_timesteps(steps, spacing), diffusers_grid(spacing, steps, scheduler))


def test_trailing_grid_is_an_ascending_noise_ladder_ending_at_pure_noise() -> None:
    """Every S: timesteps within [0, T-1], strictly increasing, the top level at T-1, so alpha-bar
    strictly decreases from level 0 (clean) to S. (torch.arange(T, 0, -T/S) returns S+1 values for
    S = 61 and others; taking them gave a level at timestep -1, whose alpha-bar wrapped around to
    alpha-bar[T-1], and no level at T-1.)"""
    schedule = DiscreteSchedule.scaled_linear()
    broken = []
    for steps in range(1, T + 1):
        grid = schedule.grid(steps, "trailing")
        timesteps = grid.timesteps[1:]
        valid = (
            int(timesteps[0]) >= 0
            and int(timesteps[-1]) == T - 1
            and bool((grid.alpha_bar[1:] < grid.alpha_bar[:-1]).all())
        )
        if not valid:
            broken.append(steps)
    assert broken == [], f"S = {broken[:8]}... give a broken grid"


@pytest.mark.parametrize("schedule", [DiscreteSchedule.scaled_linear(), FlowMatchingSchedule(shift=3.0)])
def test_level_zero_is_truly_clean(schedule) -> None:
    grid = schedule.grid(16)
    assert float(grid.timesteps[0]) == 0.0 and float(grid.signal[0]) == 1.0 and float(grid.noise[0]) == 0.0
    if grid.alpha_bar is not None:
        assert float(grid.alpha_bar[0]) == 1.0
    # Level 1 is the grid's lowest real timestep, so the last step is a real denoising step.
    assert float(grid.noise[1]) > 0


# --------------------------------------------------------------------------------------------
# The last step reaches a truly clean frame


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_last_step_of_an_exact_prediction_is_the_clean_frame(prediction_type: str) -> None:
    grid = DiscreteSchedule.scaled_linear(prediction_type=prediction_type).grid(8)
    clean, eps = random_frames(1, torch.float64, 11), random_frames(1, torch.float64, 12)
    a, b = grid.signal[1], grid.noise[1]
    x = a * clean + b * eps
    exact = {"epsilon": eps, "v_prediction": a * eps - b * clean, "sample": clean}[prediction_type]
    x0, eps_hat = clean_and_noise_estimates(x, exact, FrameLevels.gather(grid, torch.tensor([1])), prediction_type)
    torch.testing.assert_close(x0, clean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(eps_hat, eps, rtol=1e-12, atol=1e-12)
    out = ddim_step(x, exact, FrameLevels.gather(grid, torch.tensor([1])), FrameLevels.gather(grid, torch.tensor([0])), prediction_type, eta=1.0, noise=torch.full_like(x, 1e6))
    # At level 0, a' = 1 and b' = s = 0: the result is x0, with no trace of eps nor of the noise.
    torch.testing.assert_close(out, clean, rtol=1e-12, atol=1e-12)
    if prediction_type == "sample":
        assert torch.equal(out, clean)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_every_frame_the_sampler_hands_out_is_exactly_the_predicted_clean_frame(eta: float) -> None:
    """A backbone predicting a fixed clean frame: after its last step the head equals it exactly."""
    target = torch.linspace(-1, 1, 8).reshape(2, 2, 2)
    backbone = RecordingBackbone(window=3, prediction=lambda latents, t, c: target[None, :, None].expand_as(latents).clone())
    sampler = fake_sampler(backbone, "p", window=3, partitions=2, lookahead=True, eta=eta, seed=3)
    for clean, _ in zip(sampler.latents(), range(10)):
        assert torch.equal(clean.latent, target)
    # And the head's last model call was at the lowest grid timestep, not an identity step at 0.
    last_rows = backbone.calls[-1].timesteps
    assert float(sampler.grid.timesteps[1]) in last_rows[0].tolist()
