"""Train several candidate default models side by side on one GPU, then check each one's FIFO videos.

    python scripts/train_default_model_gpu.py --out runs/ --budget-seconds 330 --candidates scratch stage3
    python scripts/train_default_model_gpu.py --out /tmp/smoke --device cpu --budget-seconds 20 \
        --candidates scratch --batch 4 --calibration-steps 4 --eval-prompts 2 --eval-frames 12   # a smoke run

The model is tiny, so one training process leaves most of an H200 idle (its steps are bound by
kernel launches, not arithmetic): the candidates train at the same time, one process each. Their
step counts are fixed before they start, from a short calibration run of every candidate at once
(the seconds per step under the same sharing), so each run ends its learning-rate schedule inside
the budget and can be repeated with the printed command. Afterwards every candidate makes FIFO
videos with the fifo-shapes defaults on ``--eval-prompts`` prompts of ``--eval-frames`` frames,
and the checker's agreement is printed as a table (``summary.txt`` under ``--out``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

# Everything but the step count, which calibration decides. All start from the same seed.
COMMON = ["--motion", "--no-tracking", "--attribute-loss", "0.05", "--warmup", "200", "--ema-decay", "0.999", "--log-every", "200"]
CANDIDATES: dict[str, list[str]] = {
    # the stage-3 architecture (0.8 M parameters), from scratch
    "scratch": ["--learning-rate", "2e-3"],
    # the same, continuing the stage-3 weights trained on the CPU
    "stage3": ["--learning-rate", "1e-3", "--init", "adapters/fifo_shapes/weights/stage3"],
    # mostly FIFO-like diagonal levels, noisy levels not favoured
    "diagonal": ["--learning-rate", "2e-3", "--diagonal-fraction", "0.8", "--high-noise-bias", "1"],
    # wider (1.5 M parameters): an upper bound, slower on the CPU
    "wide": ["--learning-rate", "2e-3", "--widths", "48", "96"],
    # the second GPU stage: continues the best of the first GPU run ("stage3", 714 steps)
    "gpu2": ["--learning-rate", "1e-3", "--init", "adapters/fifo_shapes/weights/gpu1"],
    # the third: continues gpu2 (1,483 steps, 82.7% of 20 x 200 frames) at a lower rate
    "gpu3": ["--learning-rate", "7e-4", "--init", "adapters/fifo_shapes/weights/gpu2"],
}
_LOG_LINE = re.compile(r"step (\d+)/\d+\s+loss [\d.]+\s+([\d.]+) s")


def train_command(name: str, steps: int, batch: int, device: str, out: Path, log_every: int | None = None) -> list[str]:
    command = [sys.executable, "-m", "fifo_shapes.train", *COMMON, *CANDIDATES[name], "--steps", str(steps), "--batch", str(batch), "--device", device, "--out", str(out)]
    if log_every is not None:
        command += ["--log-every", str(log_every)]
    return command


def run_all(commands: dict[str, list[str]], logs: Path) -> dict[str, str]:
    """Run the commands at the same time; return each one's output. A failed one is reported, not fatal."""
    logs.mkdir(parents=True, exist_ok=True)
    running = {}
    for name, command in commands.items():
        log = (logs / f"{name}.log").open("w")
        running[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log)
    outputs = {}
    for name, (process, log) in running.items():
        code = process.wait()
        log.close()
        outputs[name] = (logs / f"{name}.log").read_text()
        if code != 0:
            print(f"{name}: training exited with status {code}; its log:\n{outputs[name][-2000:]}", flush=True)
    return outputs


def seconds_per_step(output: str) -> float | None:
    """From the training log's 'step N/M loss L T s' lines: seconds per step from the first logged
    step to the last (the first step's start-up left out)."""
    points = [(int(step), float(seconds)) for step, seconds in _LOG_LINE.findall(output)]
    if len(points) < 2:
        return None
    (first_step, first_time), (last_step, last_time) = points[0], points[-1]
    return (last_time - first_time) / (last_step - first_step)


def check_candidate(folder: Path, device: str, prompts: int, frames: int) -> str:
    from fifo_shapes.agreement import measure_agreement
    from fifo_shapes.backbone import ShapesBackbone

    backbone = ShapesBackbone(weights=str(folder), device=device)
    began = time.perf_counter()
    agreement = measure_agreement(backbone, prompts=prompts, frames=frames)
    return f"{agreement.describe()}; {time.perf_counter() - began:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--budget-seconds", type=float, default=330, help="training time of the main runs (all at once)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--calibration-steps", type=int, default=60)
    parser.add_argument("--eval-prompts", type=int, default=20, help="0 skips the check")
    parser.add_argument("--eval-frames", type=int, default=200)
    parser.add_argument("--copies", type=int, default=1, help="train each candidate this many times (NAME, NAME-2, ...): do reruns of one command agree?")
    args = parser.parse_args()
    runs = {name if copy == 1 else f"{name}-{copy}": name for name in args.candidates for copy in range(1, args.copies + 1)}

    quarter = max(args.calibration_steps // 3, 1)
    calibration = run_all(
        {run: train_command(name, args.calibration_steps, args.batch, args.device, args.out / "calibration" / run, log_every=quarter) for run, name in runs.items()},
        args.out / "calibration",
    )
    # Copies of one candidate get the same step count (the slowest copy's), so they run one command.
    per_step: dict[str, float] = {}
    for run, output in calibration.items():
        seconds = seconds_per_step(output)
        if seconds is None:
            print(f"{run}: no timing in its calibration log; left out", flush=True)
            continue
        per_step[runs[run]] = max(per_step.get(runs[run], 0.0), seconds)
    steps = {name: max(int(args.budget_seconds / seconds), 1) for name, seconds in per_step.items()}
    for name, count in steps.items():
        print(f"{name}: {per_step[name] * 1000:.1f} ms per step with {len(runs)} at once -> {count} steps", flush=True)

    commands = {run: train_command(name, steps[name], args.batch, args.device, args.out / run) for run, name in runs.items() if name in steps}
    for name, command in commands.items():
        print(f"{name}: {' '.join(command[1:])}", flush=True)
    began = time.perf_counter()
    run_all(commands, args.out / "logs")
    print(f"training took {time.perf_counter() - began:.0f} s", flush=True)

    if args.eval_prompts == 0:
        return
    rows = []
    for name in commands:
        folder = args.out / name
        if not (folder / "shapes.safetensors").is_file():
            rows.append(f"{name:10} no weights written")
            continue
        rows.append(f"{name:10} {steps[runs[name]]:6d} steps  {check_candidate(folder, args.device, args.eval_prompts, args.eval_frames)}")
        print(rows[-1], flush=True)
    summary = "\n".join([f"agreement, {args.eval_prompts} prompts x {args.eval_frames} frames, fifo-shapes defaults, device {args.device}", *rows])
    (args.out / "summary.txt").write_text(summary + "\n")
    print(summary)


if __name__ == "__main__":
    main()
