"""Train the default model on the shapes world and write its weights (safetensors) and config.

The shipped weights come from six stages (docs/default-model.md); the defaults are stage 2's settings:

    # stage 1, the base model: shapes, colours and backgrounds, one noise level per clip (one GPU, ~6 min)
    python -m fifo_shapes.train --out adapters/fifo_shapes/weights/base --steps 4600 --batch 128 \
        --learning-rate 2e-3 --warmup 200 --ema-decay 0.999 --diagonal-fraction 0 --high-noise-bias 1
    # stage 2, motion: adds space-time convolutions, FIFO-like per-frame levels (2 CPU cores, ~31 min)
    python -m fifo_shapes.train --init adapters/fifo_shapes/weights/base --motion --out adapters/fifo_shapes/weights/stage2
    # stage 3, every word visible: the attribute loss separates the prompt embeddings (2 CPU cores, ~37 min)
    python -m fifo_shapes.train --init adapters/fifo_shapes/weights/stage2 --motion --attribute-loss 0.05 \
        --steps 1800 --learning-rate 1e-3 --warmup 50 --out adapters/fifo_shapes/weights/stage3
    # stages 4 to 6 on one GPU (one H200: 301, 313 and 237 s), the last writes the shipped weights
    python -m fifo_shapes.train --motion --no-tracking --attribute-loss 0.05 --warmup 200 --ema-decay 0.999 \
        --learning-rate 1e-3 --init adapters/fifo_shapes/weights/stage3 --steps 714 --batch 512 --device cuda \
        --out adapters/fifo_shapes/weights/gpu1
    python -m fifo_shapes.train --motion --no-tracking --attribute-loss 0.05 --warmup 200 --ema-decay 0.999 \
        --learning-rate 1e-3 --init adapters/fifo_shapes/weights/gpu1 --steps 1483 --batch 512 --device cuda \
        --out adapters/fifo_shapes/weights/gpu2
    python -m fifo_shapes.train --motion --no-tracking --attribute-loss 0.05 --warmup 200 --ema-decay 0.999 \
        --learning-rate 7e-4 --init adapters/fifo_shapes/weights/gpu2 --steps 2238 --batch 512 --device cuda \
        --out adapters/fifo_shapes/weights

The tracker model (``fifo-shapes-tracker``, ``weights/tracker/``) branches off stage 3:

    # T4, the shape's frame of reference: the denoiser learns on clips moved back by their
    # true offsets (750 steps of a 1,500-step schedule; 2 CPU cores, ~26 min)
    python -m fifo_shapes.train --init adapters/fifo_shapes/weights/stage3 --motion --tracking --attribute-loss 0.05 \
        --steps 1500 --stop-after 750 --learning-rate 1e-3 --warmup 30 --ema-decay 0.995 --out adapters/fifo_shapes/weights/stage4
    # T5, the motion tracker alone, afresh, on nearly clean clips, bouncing drawn 4x as often (2 CPU cores, ~12 min)
    python -m fifo_shapes.train --init adapters/fifo_shapes/weights/stage4 --motion --tracking --tracker-only \
        --tracker-noise 0.3 --bouncing-weight 4 --steps 600 --batch 64 --learning-rate 1e-3 --warmup 20 \
        --ema-decay 0.99 --high-noise-bias 1 --out adapters/fifo_shapes/weights/tracker

    python -m fifo_shapes.train --steps 20 --batch 4 --out /tmp/tiny   # a smoke run

Video diffusion training (Ho et al. 2022) with a noise level per frame:
``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` frame by frame, and the model learns
``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0`` with a mean-squared error. Half of the clips (the
``diagonal_fraction``) get increasing levels from first to last frame, as the windows of FIFO's
queue have, so the model learns to continue cleaner frames into noisier ones; the other half share
one level, as an ordinary clip (the queue's clip start) has. Clips are drawn by
:mod:`fifo_shapes.world` on the training device as they are needed, from a seeded generator, so a
run is determined by its settings. Captions name the background in 60% of clips, leave it out in
30% (the model then picks one) and are empty in 10% (the unconditional model that classifier-free
guidance needs). The saved weights are an exponential moving average of the trained ones.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fifo_shapes.backbone import CONFIG_FILE, WEIGHTS_FILE, ShapesBackbone
from fifo_shapes.model import ShapesModel, ShapesModelConfig, cosine_alphas_cumprod, offsets_from_steps, step_index
from fifo_shapes.world import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, ClipBatch, all_captions, random_clips, render, torus_offset


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    steps: int = Field(default=1300, ge=1)
    batch: int = Field(default=24, ge=1, description="clips per step")
    frames: int = Field(default=8, ge=2, description="frames per clip: the backbone's window f")
    learning_rate: float = 1.5e-3
    warmup: int = 100
    ema_decay: float = 0.998
    caption_background: float = 0.6
    caption_empty: float = 0.1
    diagonal_fraction: float = Field(default=0.5, ge=0, le=1, description="clips with increasing per-frame levels, as in FIFO's queue")
    high_noise_bias: float = Field(
        default=2.0, ge=1,
        description="draw levels as T * u^(1/bias): above 1 trains more on the noisy levels, where a frame's position and motion are decided",
    )
    attribute_loss: float = Field(
        default=0.0, ge=0,
        description="weight of a training-only loss that reads colour, shape, motion and background back from the prompt "
        "embedding (cosine classifier): it keeps every word of the grammar visible to the denoiser",
    )
    tracker_loss: float = Field(
        default=1.0, ge=0,
        description="weight of the motion tracker's cross-entropy on the true frame-to-frame steps (models with tracking)",
    )
    tracker_only: bool = Field(
        default=False,
        description="train a new motion tracker alone (the --init folder's tracker is left out), everything else frozen; the tracker is cheap, so a run sees many more clips",
    )
    tracker_noise: float = Field(
        default=1.0, gt=0, le=1,
        description="with tracker_only, scale the noise levels by this: the first window's frames, whose steps make the video, are nearly clean",
    )
    bouncing_weight: float = Field(
        default=1.0, gt=0,
        description="draw bouncing clips this many times as often as each other motion: a bounce off a wall is the tracker's one hard, rare step",
    )
    init: str | None = Field(default=None, description="folder of trained weights to start from (stage 2 starts from stage 1)")
    stop_after: int | None = Field(
        default=None, ge=1, description="end after this many steps, keeping the learning-rate schedule of `steps` (a run cut short on purpose)"
    )
    checkpoint_every: int | None = Field(default=None, ge=1, description="also save the weights every this many steps")
    time_limit_minutes: float | None = Field(default=None, gt=0, description="stop early (and say so) after this long")
    model: ShapesModelConfig = ShapesModelConfig()

    @model_validator(mode="after")
    def _tracker_noise_needs_tracker_only(self) -> TrainConfig:
        if self.tracker_noise != 1.0 and not self.tracker_only:
            raise ValueError(
                f"tracker_noise {self.tracker_noise} scales the noise of tracker-only training, and this run trains the whole model; "
                "add --tracker-only (with --tracking) or drop --tracker-noise"
            )
        return self


def caption_tokens(model: ShapesModel) -> tuple[dict[str, int], torch.Tensor]:
    """Every training caption's row in one token table ``'k l'``, tokenized once."""
    texts = [""] + [c.text for c in all_captions(with_background=False)] + [c.text for c in all_captions(with_background=True)]
    return {text: row for row, text in enumerate(texts)}, model.text.tokenize(texts)


def captions_for(clips: ClipBatch, config: TrainConfig, generator: torch.Generator) -> list[str]:
    draw = torch.rand(clips.colour.shape[0], generator=generator).tolist()
    texts = []
    for row, u in enumerate(draw):
        if u < config.caption_empty:
            texts.append("")
        else:
            texts.append(clips.caption(row, with_background=u < config.caption_empty + config.caption_background).text)
    return texts


class AttributeReader(nn.Module):
    """Training only: reads each attribute of a caption back from its prompt embedding.

    A cosine classifier (unit rows against the unit embedding, fixed scale), so it can only
    succeed if the attributes point the embedding in different directions: with the plain
    diffusion loss, the motion words barely moved it (cosine 0.999 between "moving left" and
    "moving right", docs/default-model.md) and the denoiser had nothing to follow.
    """

    SCALE = 10.0
    ATTRIBUTES = {"colour": COLOURS, "shape": SHAPES, "motion": MOTIONS, "background": (*BACKGROUNDS, "none")}

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.rows = nn.ParameterDict({name: nn.Parameter(torch.randn(len(values), embed_dim)) for name, values in self.ATTRIBUTES.items()})

    def labels(self, clips: ClipBatch, texts: list[str]) -> dict[str, torch.Tensor]:
        none = len(BACKGROUNDS)
        background = torch.tensor([int(clips.background[row]) if "background" in text else none for row, text in enumerate(texts)])
        return {"colour": clips.colour, "shape": clips.shape, "motion": clips.motion, "background": background}

    def loss(self, embedding: torch.Tensor, labels: dict[str, torch.Tensor], captioned: torch.Tensor) -> torch.Tensor:
        if not captioned.any():
            return embedding.new_zeros(())
        unit = F.normalize(embedding[captioned].float(), dim=-1)
        losses = [
            F.cross_entropy(self.SCALE * unit @ F.normalize(self.rows[name], dim=-1).T, labels[name].to(unit.device)[captioned])
            for name in self.ATTRIBUTES
        ]
        return torch.stack(losses).mean()


def true_steps(clips: ClipBatch) -> torch.Tensor:
    """The world's frame-to-frame steps ``'b (f-1) 2'`` (shortest way round the torus)."""
    return torus_offset(clips.positions[:, 1:] - clips.positions[:, :-1])


def noise_levels(batch: int, frames: int, config: TrainConfig, total: int, generator: torch.Generator) -> torch.Tensor:
    """Integer timesteps ``'b f'``: one per clip, or an increasing ramp for the diagonal fraction."""
    bias = 1.0 / config.high_noise_bias
    if config.high_noise_bias == 1:
        shared = torch.randint(0, total, (batch, 1), generator=generator).expand(batch, frames)
    else:
        shared = (torch.rand(batch, 1, generator=generator) ** bias * total).long().clamp(max=total - 1).expand(batch, frames)
    if config.diagonal_fraction == 0:
        return shared.clone()
    # FIFO's windows span about f / (n f) of the levels (half with n = 2), lower ends clamped to
    # clean frames where lookahead keeps dequeued frames in the window.
    spread = torch.rand(batch, 1, generator=generator) * 0.6
    start = torch.rand(batch, 1, generator=generator) ** bias * (1 + spread) - spread
    ramp = ((start + spread * torch.linspace(0, 1, frames)[None]) * total).round().long().clamp(0, total - 1)
    diagonal = torch.rand(batch, 1, generator=generator) < config.diagonal_fraction
    return torch.where(diagonal, ramp, shared)


def _start_from(model: ShapesModel, folder: str, fresh_tracker: bool = False) -> None:
    """Load trained weights into ``model``; only the layers later stages add may be missing from
    them: stage 2's motion convolutions and the text tower's word path (zero-initialised, so the
    loaded model's output is unchanged) and stage 4's motion tracker. ``fresh_tracker`` keeps
    the model's new tracker instead of the folder's (stage 5 trains one afresh)."""
    from safetensors.torch import load_file

    from fifo_shapes.backbone import WEIGHTS_FILE

    state = load_file(str(Path(folder) / WEIGHTS_FILE))
    own = model.state_dict()
    other_layout = any(key.startswith("denoiser.tracker.") and key in own and own[key].shape != value.shape for key, value in state.items())
    if other_layout and not fresh_tracker:
        print(f"the motion tracker in {folder} has another layout; training a new one", flush=True)
    if fresh_tracker or other_layout:
        # The denoiser and text tower are kept; the model's own (new) tracker stays.
        state = {key: value for key, value in state.items() if not key.startswith("denoiser.tracker.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    added = (".motion.", "text.words.", "denoiser.tracker.")
    foreign = [key for key in missing if not any(part in key for part in added)] + list(unexpected)
    if foreign:
        raise ValueError(f"the weights in {folder} do not fit this model: {', '.join(foreign[:5])}; train the base model with the same sizes")


def learning_rate(step: int, config: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / config.warmup)
    return config.learning_rate * warm * 0.5 * (1 + math.cos(math.pi * step / config.steps))


def train(config: TrainConfig, device: str = "cpu", log_every: int = 100, checkpoint_to: str | Path | None = None) -> tuple[ShapesModel, dict]:
    """Train, returning the averaged (EMA) model and its metadata; with ``checkpoint_every`` set,
    the weights so far are also written to ``checkpoint_to`` (a long CPU run loses nothing)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = torch.device(device)
    # Gaussian noise is drawn where it is used (the bulk of the random numbers), seeded as well.
    noise_generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    model = ShapesModel(config.model)
    if config.init is not None:
        _start_from(model, config.init, fresh_tracker=config.tracker_only)
    model = model.to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    reader = AttributeReader(config.model.embed_dim).to(device) if config.attribute_loss > 0 and not config.tracker_only else None
    if config.tracker_only:
        if model.denoiser.tracker is None:
            raise ValueError("tracker_only trains the motion tracker, and this model has none; add --tracking")
        model.requires_grad_(False)
        model.denoiser.tracker.requires_grad_(True)
    trained = [p for p in (*model.parameters(), *(reader.parameters() if reader is not None else [])) if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.learning_rate, weight_decay=0.01)
    abar = cosine_alphas_cumprod(config.model.num_train_timesteps).float().to(device)
    rows, table = caption_tokens(model)
    tracking = model.denoiser.tracker is not None
    table = table.to(device)
    began = time.perf_counter()
    losses: list[float] = []
    done = 0
    for step in range(config.steps):
        clips = random_clips(config.batch, config.frames, generator, config.bouncing_weight)
        clean = render(clips, device)
        texts = captions_for(clips, config, generator)
        tokens = table[torch.tensor([rows[text] for text in texts], device=device)]
        timesteps = noise_levels(config.batch, config.frames, config, config.model.num_train_timesteps, generator).to(device)
        if config.tracker_only:
            timesteps = (timesteps * config.tracker_noise).long()
        noise = torch.randn(clean.shape, generator=noise_generator, device=device)
        a = abar[timesteps].sqrt()[:, None, :, None, None]
        b = (1 - abar[timesteps]).sqrt()[:, None, :, None, None]
        noisy = a * clean + b * noise
        target = a * noise - b * clean
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        steps = true_steps(clips).to(device) if tracking else None
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            prompts = model.text(tokens)
            logits = model.denoiser.tracker(noisy, timesteps.float(), prompts) if tracking else None
            if config.tracker_only:
                prediction = None
            else:
                # With a tracker the denoiser learns in the shape's frame of reference from the
                # true offsets, and the tracker learns to find them.
                offsets = offsets_from_steps(steps) if tracking else None
                prediction = model.denoiser(noisy, timesteps.float(), prompts, offsets)
        loss = F.mse_loss(prediction.float(), target) if prediction is not None else torch.zeros((), device=device)
        if logits is not None:
            loss = loss + config.tracker_loss * F.cross_entropy(logits.float().flatten(0, 1), step_index(steps).flatten())
        if reader is not None:
            captioned = torch.tensor([bool(text) for text in texts], device=device)
            loss = loss + config.attribute_loss * reader.loss(prompts, reader.labels(clips, texts), captioned)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        with torch.no_grad():
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            for kept, current in zip(ema.parameters(), model.parameters()):
                kept.lerp_(current, 1 - decay)
        losses.append(float(loss.detach()))
        done = step + 1
        if log_every and (done % log_every == 0 or done == config.steps):
            recent = sum(losses[-log_every:]) / len(losses[-log_every:])
            print(f"step {done}/{config.steps}  loss {recent:.4f}  {time.perf_counter() - began:.1f} s", flush=True)
        if config.checkpoint_every and checkpoint_to is not None and done % config.checkpoint_every == 0 and done < config.steps:
            save(ema, _metadata(config, done, time.perf_counter() - began, device, losses), checkpoint_to)
        if config.stop_after is not None and done >= config.stop_after:
            break
        if config.time_limit_minutes is not None and time.perf_counter() - began > 60 * config.time_limit_minutes:
            print(f"time limit reached after {done} of {config.steps} steps; rerun with --steps {done} to reproduce", flush=True)
            break
    return ema.eval(), _metadata(config, done, time.perf_counter() - began, device, losses)


def _metadata(config: TrainConfig, done: int, seconds: float, device: torch.device, losses: list[float]) -> dict:
    return {
        "model": config.model.model_dump(mode="json"),
        "training": config.model_dump(mode="json", exclude={"model"}),
        "steps_done": done,
        "seconds": round(seconds, 1),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "final_loss": round(sum(losses[-100:]) / len(losses[-100:]), 5),
        "world": {"colours": list(COLOURS), "shapes": list(SHAPES), "motions": list(MOTIONS)},
    }


def save(model: ShapesModel, metadata: dict, folder: str | Path) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().float().cpu().contiguous() if value.is_floating_point() else value.cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return folder


def evaluate(model: ShapesModel, device: str, prompts: int, frames: int) -> str:
    """Prompt agreement of FIFO sampling with the backbone's defaults (a short version of
    benchmarks/prompt_agreement.py)."""
    from fifo_shapes.agreement import measure_agreement

    backbone = ShapesBackbone(device=device, model=model)
    return measure_agreement(backbone, prompts=prompts, frames=frames).describe()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fifo_shapes.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for shapes.safetensors and config.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--diagonal-fraction", type=float)
    parser.add_argument("--time-limit-minutes", type=float)
    parser.add_argument("--stop-after", type=int, metavar="STEPS", help="end after STEPS steps, keeping the schedule of --steps")
    parser.add_argument("--checkpoint-every", type=int, metavar="STEPS", help="also write the weights so far to --out every STEPS steps")
    parser.add_argument("--widths", type=int, nargs=2, help="channels of the 16x16 and 8x8 levels")
    parser.add_argument("--motion", action=argparse.BooleanOptionalAction, default=None, help="add space-time motion convolutions")
    parser.add_argument("--tracking", action=argparse.BooleanOptionalAction, default=None, help="add the motion tracker (stage 4)")
    parser.add_argument("--tracker-only", action="store_true", default=None, help="train only the motion tracker, afresh (stage 5)")
    parser.add_argument("--tracker-noise", type=float, help="with --tracker-only, scale the training noise levels by this (0 to 1)")
    parser.add_argument("--bouncing-weight", type=float, help="draw bouncing clips this many times as often as each other motion")
    parser.add_argument("--init", help="start from the weights in this folder")
    parser.add_argument("--ema-decay", type=float)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--high-noise-bias", type=float)
    parser.add_argument("--attribute-loss", type=float, help="weight of the loss that reads the attributes back from the prompt embedding")
    parser.add_argument("--evaluate", type=int, default=0, metavar="FRAMES", help="afterwards, check FIFO videos of this many frames on 8 prompts")
    parser.add_argument("--log-every", type=int, default=100)
    args = parser.parse_args(argv)
    values = {
        key: getattr(args, key)
        for key in ("seed", "steps", "batch", "learning_rate", "diagonal_fraction", "time_limit_minutes", "checkpoint_every", "init", "ema_decay", "warmup", "high_noise_bias", "attribute_loss", "tracker_only", "tracker_noise", "bouncing_weight", "stop_after")
        if getattr(args, key) is not None
    }
    sizes = {key: value for key, value in (("widths", tuple(args.widths) if args.widths else None), ("motion", args.motion), ("tracking", args.tracking)) if value is not None}
    if sizes:
        values["model"] = ShapesModelConfig(**sizes)
    config = TrainConfig(**values)
    model, metadata = train(config, args.device, args.log_every, checkpoint_to=args.out)
    if args.evaluate:
        metadata["evaluation"] = evaluate(model, args.device, prompts=8, frames=args.evaluate)
        print(f"evaluation: {metadata['evaluation']}", flush=True)
    folder = save(model, metadata, args.out)
    print(f"wrote {folder / WEIGHTS_FILE} ({metadata['steps_done']} steps, {metadata['seconds']:.0f} s on {metadata['device']})")


if __name__ == "__main__":
    main()
