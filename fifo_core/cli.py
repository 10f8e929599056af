"""The ``fifo-diffusion`` command: ``generate``, ``generate-many``, ``resume``, ``backbones``, ``sinks``, ``schema``.

A thin layer over :mod:`fifo_core.api`: flags become a :class:`RunConfig`; any
:class:`FifoError` is printed as one line naming the field and the fix, with exit status 2.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from fifo_core.api import DEFAULT_SAVE_EVERY, FrameEvent, RunConfig, RunSummary, generate, resume
from fifo_core.config import json_schema, load_config_file
from fifo_core.distributed import WindowGroup, describe_lost_group, is_collective_failure
from fifo_core.errors import FifoError, NumericalError
from fifo_core.plugins import default_plugins
from fifo_core.sink import SinkFailure, redact_target
from fifo_core.state import holds_state
from fifo_core.stopping import StopRequest

EXIT_CONFIG_ERROR = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130


def _fail(error: FifoError) -> None:
    click.echo(f"error: {error.one_line()}", err=True)
    sys.exit(EXIT_CONFIG_ERROR)


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _backbone_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(FifoError(f"--option takes KEY=VALUE, got {pair!r}; for example --option dtype=float16", field="backbone_options"))
        options[key.strip().replace("-", "_")] = _option_value(value)
    return options


class _Progress:
    """A progress bar on stderr: frames done, frames per second and, when bounded, the ETA."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.bar = None

    def start(self) -> None:
        """Shown only once the run is checked and loaded, so errors are not mixed with a bar."""
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="frame", dynamic_ncols=True, mininterval=0.5, file=sys.stderr)

    def frame(self, event: FrameEvent) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fifo-diffusion")
def main() -> None:
    """Videos of unbounded length from text-to-video diffusion models (FIFO-Diffusion)."""
    # A backbone's warning (a prompt word it does not know, say) is for the user, not a
    # programmer: one line, without the source line Python would show.
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> str:
    return f"warning: {message}\n"


def _run_options(command):
    """The settings shared by ``generate`` and ``generate-many``."""
    options = [
        click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or JSON file of settings; flags win over it."),
        click.option("--backbone", "-b", help="Backbone name (see `fifo-diffusion backbones`)."),
        click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE", help="Backbone option, repeatable."),
        click.option("--model", "model_path", metavar="PATH_OR_ID", help="Shorthand for --option model=PATH_OR_ID (diffusers folders, hub ids)."),
        click.option("--checkpoint", "checkpoint_path", metavar="PATH", help="Shorthand for --option checkpoint=PATH (checkpoint files)."),
        click.option("--frames", type=int, help="Video frames to generate; leave out to run until Ctrl-C."),
        click.option("--n", "partitions", type=int, help="Latent partitions n (S = n*f levels)."),
        click.option("--f", "window", type=int, help="Window f in latent frames."),
        click.option("--lookahead/--no-lookahead", default=None, help="Lookahead denoising (default: the backbone's)."),
        click.option("--guidance", "guidance_scale", type=float, help="Classifier-free guidance scale; 1 turns it off."),
        click.option("--negative-prompt", help="Prompt for the unconditional half of guidance."),
        click.option("--sampler", type=click.Choice(["ddim", "ddpm", "euler"]), help="Per-frame scheduler step."),
        click.option("--eta", type=float, help="DDIM eta (ddim sampler only)."),
        click.option("--seed", type=int, help="Seed; the seed alone determines the output."),
        click.option("--fps", type=float, help="Frame rate written to the sinks."),
        click.option("--height", type=int),
        click.option("--width", type=int),
        click.option("--start", type=click.Choice(["ramp", "clip"]), help="Queue start: pure-noise ramp or one ordinary clip first, as the reference does (default: the backbone's)."),
        click.option("--start-guidance", "start_guidance_scale", type=float, help="Guidance for the clip start's first clip (default: the backbone's, else --guidance)."),
        click.option("--max-batch", type=int, help="Most window rows per model call (caps memory)."),
        click.option("--overlap-decode/--no-overlap-decode", default=None, help="Decode on a thread of its own, overlapping denoising (default: on for CUDA)."),
        click.option("--init-video", metavar="VIDEO", help="Continue this video: the new frames start where it ends (the backbone encodes it)."),
        click.option("--init-image", metavar="IMAGE", help="Start the video from this image (the backbone encodes it)."),
        click.option("--include-init", is_flag=True, default=None, help="Write the init video's (or image's) own frames first."),
        click.option("--sink", "-s", "sinks", multiple=True, help="Output: out.mp4, frames/ or rtmp://host/app/key; repeatable."),
        click.option("--overwrite", is_flag=True, default=None, help="Replace an existing output file instead of refusing it."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
        click.option(
            "--collective-timeout", "collective_timeout", type=click.FloatRange(min=1, max=86400), default=600.0, show_default=True,
            metavar="SECONDS", help="Under torchrun: how long a rank waits for the others before the run ends naming the lost rank.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _settings(config_file: str | None, options: tuple[str, ...], sinks: tuple[str, ...], flags: dict[str, Any]) -> dict[str, Any]:
    """Settings from the config file, then the flags given (flags win)."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    shorthands = {"model": flags.pop("model_path", None), "checkpoint": flags.pop("checkpoint_path", None)}
    values |= {key: value for key, value in flags.items() if value is not None}
    backbone_options = _backbone_options(options) | {key: value for key, value in shorthands.items() if value is not None}
    if backbone_options:
        values["backbone_options"] = values.get("backbone_options", {}) | backbone_options
    if sinks:
        values["sinks"] = list(sinks)
    return values


def _run(config: RunConfig, group: WindowGroup | None, quiet: bool, stop: StopRequest, **extra: Any) -> RunSummary:
    """:func:`generate` with a progress bar; ``extra`` goes to it (``state_dir``, ``save_every``),
    or, with ``resume_from``, to :func:`resume`."""
    plugins = default_plugins()
    plugins.report_failures()
    resume_from = extra.pop("resume_from", None)
    total = config.frames if config is not None else None  # a resumed run shows frames without a total
    progress = _Progress(total, enabled=not quiet and (group is None or group.is_main))

    def sink_failed(failure: SinkFailure) -> None:
        click.echo(f"\nwarning: {failure.describe()}", err=True)

    callbacks = dict(plugins=plugins, on_frame=progress.frame, on_sink_failure=sink_failed, on_ready=progress.start, group=group, stop=stop)
    try:
        if resume_from is not None:
            return resume(resume_from, **callbacks, **extra)
        return generate(config, **callbacks, **extra)
    except NumericalError as error:
        if group is None or group.is_main:
            saved = f"; the state from just before is in {extra['state_dir']}: resume it with `fifo-diffusion resume {extra['state_dir']}` (a changed -o dtype=... is allowed)" if extra.get("state_dir") else ""
            click.echo(f"\nerror: {error.one_line()}{saved}", err=True)
        sys.exit(EXIT_RUN_FAILED)
    finally:
        progress.close()


def _run_in_group(config: RunConfig | None, group: WindowGroup | None, quiet: bool, stop: StopRequest, **extra: Any) -> RunSummary:
    """:func:`_run`, then leave the torchrun group cleanly (see :meth:`WindowGroup.close`)."""
    if group is None:
        return _run(config, None, quiet, stop, **extra)
    try:
        summary = _run(config, group, quiet, stop, **extra)
    except BaseException as error:
        lost = describe_lost_group(group, error) if is_collective_failure(error) else None  # while the store is still there
        group.close(wait_for_others=False)
        if lost is not None:
            click.echo(f"\nerror: {lost}", err=True)
            sys.exit(EXIT_RUN_FAILED)
        raise
    if group.stopped_without_others:
        click.echo(group.stopped_without_others, err=True)
    group.close(wait_for_others=not summary.interrupted)
    return summary


def _report(summary: RunSummary, state_dir: str | None = None) -> None:
    rate = f"{summary.frames_per_second:.2f} frames/s"
    if state_dir is not None and not holds_state(state_dir):
        state_dir = None  # stopped before its first save (while loading, say): nothing to resume
    if summary.interrupted:
        saved = f"; continue with `fifo-diffusion resume {state_dir}`" if state_dir else ""
        click.echo(f"stopped after {summary.frames} frames ({rate}); every sink holds every frame made{saved}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    longer = f"; make it longer with `fifo-diffusion resume {state_dir} --frames MORE`" if state_dir else ""
    click.echo(f"{_outcome(summary)} ({rate}){longer}", err=True)


def _outcome(summary: RunSummary) -> str:
    """Where the frames went: only the sinks that hold them, then the failed ones by name."""
    failed = [target for target in summary.config.sinks if any(failure.target == target for failure in summary.sink_failures)]
    kept = [redact_target(target) for target in summary.config.sinks if target not in failed]
    outcome = f"wrote {summary.frames} frames to {', '.join(kept)}" if kept else f"made {summary.frames} frames but no sink kept them"
    if failed:
        outcome += f"; failed: {', '.join(redact_target(target) for target in failed)} (see the warnings above)"
    return outcome


_STATE_HELP = "Save the run's state in this folder (at the start, every --save-every frames, when it stops); continue with `fifo-diffusion resume DIR`."
_SAVE_EVERY_HELP = "Frames between two saves of the state."


@main.command("generate")
@click.argument("prompt", required=False)
@_run_options
@click.option("--state", "state_dir", type=click.Path(file_okay=False), help=_STATE_HELP)
@click.option("--save-every", type=int, default=DEFAULT_SAVE_EVERY, show_default=True, metavar="N", help=_SAVE_EVERY_HELP)
def generate_command(
    prompt: str | None, config_file: str | None, options: tuple[str, ...], sinks: tuple[str, ...], quiet: bool, collective_timeout: float,
    state_dir: str | None, save_every: int, **flags: Any,
) -> None:
    """Generate a video for PROMPT into one or more sinks.

    Under torchrun, every process shares each iteration's windows and rank 0 writes the sinks.
    """
    try:
        values = _settings(config_file, options, sinks, flags)
        if prompt is not None:
            values["prompt"] = prompt
        if "prompt" not in values:
            raise FifoError("no prompt given; pass it as the first argument or set `prompt` in --config", field="prompt")
        config = RunConfig.parse(values)
        group = WindowGroup.from_environment(timeout_s=collective_timeout)  # set up by torchrun; None for one process
        stop = StopRequest()
        extra = {} if state_dir is None else {"state_dir": state_dir, "save_every": save_every}
        with stop.on_signals():  # Ctrl-C and SIGTERM end the run cleanly, keeping every frame
            summary = _run_in_group(config, group, quiet, stop, **extra)
    except FifoError as error:
        _fail(error)
    if group is not None and not group.is_main:
        return  # rank 0 reports for the whole group
    _report(summary, state_dir)
    if summary.sink_failures:
        sys.exit(1)


@main.command("resume")
@click.argument("state_dir", type=click.Path(file_okay=False))
@click.option("--frames", type=int, help="Video frames in all, counted from the start of the video; leave out to run until Ctrl-C (or to the saved run's limit).")
@click.option("--sink", "-s", "sinks", multiple=True, help="Outputs instead of the saved run's: those of the saved run continue, new ones get the frames from here on.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE", help="Only device, dtype, vae_dtype, threads and compile may change.")
@click.option("--save-every", type=int, default=DEFAULT_SAVE_EVERY, show_default=True, metavar="N", help=_SAVE_EVERY_HELP)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--collective-timeout", "collective_timeout", type=click.FloatRange(min=1, max=86400), default=600.0, show_default=True,
    metavar="SECONDS", help="Under torchrun: how long a rank waits for the others before the run ends naming the lost rank.",
)
def resume_command(
    state_dir: str, frames: int | None, sinks: tuple[str, ...], options: tuple[str, ...], save_every: int, quiet: bool, collective_timeout: float
) -> None:
    """Continue the run saved in STATE_DIR (by `generate --state STATE_DIR`) where it stopped.

    The frames made from here on are those an uninterrupted run makes (same seed, same thread
    count). Settings stay as saved; only --frames, the outputs and the backbone's precision and
    device may change. Under torchrun, as generate.
    """
    try:
        if frames is not None and frames < 1:
            raise FifoError(f"--frames must be at least 1, got {frames}", field="frames")
        extra: dict[str, Any] = {"resume_from": state_dir, "save_every": save_every, "frames": frames}
        if sinks:
            extra["sinks"] = list(sinks)
        if options:
            extra["backbone_options"] = _backbone_options(options)
        group = WindowGroup.from_environment(timeout_s=collective_timeout)
        stop = StopRequest()
        with stop.on_signals():
            summary = _run_in_group(None, group, quiet, stop, **extra)
    except FifoError as error:
        _fail(error)
    if group is not None and not group.is_main:
        return
    _report(summary, state_dir)
    if summary.sink_failures:
        sys.exit(1)


@main.command("generate-many")
@click.argument("prompts_file", type=click.Path(dir_okay=False))
@_run_options
def generate_many_command(
    prompts_file: str, config_file: str | None, options: tuple[str, ...], sinks: tuple[str, ...], quiet: bool, collective_timeout: float,
    **flags: Any,
) -> None:
    """One video per line of PROMPTS_FILE; sink targets take {index} (and {index:03d}).

    Under torchrun the prompts are spread over the processes, one whole video each.
    """
    try:
        try:
            prompts = [line.strip() for line in Path(prompts_file).read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as error:
            raise FifoError(f"cannot read {prompts_file!r}: {error.strerror}", field="prompts_file") from None
        if not prompts:
            raise FifoError(f"{prompts_file} holds no prompts; write one prompt per line", field="prompts_file")
        values = _settings(config_file, options, sinks, flags)
        targets_per_video = _targets_for_each_video(values.get("sinks", []), len(prompts))
        configs = [
            RunConfig.parse(values | {"prompt": prompt, "sinks": targets})
            for prompt, targets in zip(prompts, targets_per_video)
        ]
        group = WindowGroup.from_environment(timeout_s=collective_timeout)
        rank, world = (group.rank, group.world_size) if group else (0, 1)
        where = f"[rank {rank}] " if group is not None else ""  # only torchrun runs several processes
        any_sink_failed = False
        stop = StopRequest()
        try:
            with stop.on_signals():
                for config in configs[rank::world]:
                    summary = _run(config, None, quiet, stop)
                    if summary.interrupted:
                        _report(summary)
                    any_sink_failed |= bool(summary.sink_failures)
                    click.echo(f"{where}{config.prompt!s}: {_outcome(summary)}", err=True)
        finally:
            if group is not None:
                # Ranks have different amounts of work, so none waits for the others here.
                group.close(wait_for_others=False)
    except FifoError as error:
        _fail(error)
    if any_sink_failed:
        sys.exit(1)


def _targets_for_each_video(patterns: list[str], videos: int) -> list[list[str]]:
    """The sink targets of each video from the ``--sink`` patterns of generate-many; every
    pattern must give each video a target of its own."""
    example = "for example --sink 'videos/{index:03d}.mp4'"
    if not patterns:
        raise FifoError(f"generate-many needs a --sink pattern with an {{index}} placeholder, {example}", field="sinks")
    for pattern in patterns:
        shown = redact_target(pattern)
        try:
            first, second = pattern.format(index=0), pattern.format(index=1)
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            raise FifoError(
                f"the --sink pattern {shown!r} cannot be filled in ({type(error).__name__}: {error}); "
                f"the only placeholder is {{index}}, optionally formatted as {{index:03d}}; write a literal brace as {{{{ or }}}}, {example}",
                field="sinks",
            ) from None
        if first == second:
            raise FifoError(
                f"the --sink pattern {shown!r} gives every video the same target {redact_target(first)!r}, so they would "
                f"overwrite each other; put an {{index}} placeholder in it (not {{{{index}}}}), {example}",
                field="sinks",
            )
    return [[pattern.format(index=index) for pattern in patterns] for index in range(videos)]


@main.command("backbones")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def backbones_command(as_json: bool) -> None:
    """List installed backbones and their defaults."""
    plugins = default_plugins()
    plugins.report_failures()
    specs = plugins.backbones()
    try:
        default = plugins.default_backbone()
    except FifoError:
        default = None  # none or several declared: a run must name its backbone, and says so
    if as_json:
        click.echo(json.dumps({name: {"plugin": spec.plugin, "description": spec.description, "aliases": list(spec.aliases), "defaults": spec.defaults.model_dump()} for name, spec in specs.items()}, indent=2))
        return
    for name, spec in specs.items():
        aliases = f" (aliases: {', '.join(spec.aliases)})" if spec.aliases else ""
        click.echo(f"{name}{aliases}  [{spec.plugin}]{'  (default)' if name == default else ''}")
        if spec.description:
            click.echo(f"    {spec.description}")
        d = spec.defaults
        click.echo(
            f"    {d.width}x{d.height}, f={d.window}, n={d.partitions}, lookahead={'on' if d.lookahead else 'off'}, "
            f"sampler={d.sampler}, eta={d.eta:g}, guidance={d.guidance_scale:g}, fps={d.fps:g}, "
            f"frames per latent={d.frames_per_latent}"
        )
        if spec.options is not None:
            click.echo(f"    options: {', '.join(spec.options.model_fields)}")


@main.command("sinks")
def sinks_command() -> None:
    """List installed sinks, in the order they are tried against a --sink target."""
    plugins = default_plugins()
    plugins.report_failures()
    for spec in plugins.sinks():
        click.echo(f"{spec.name}  [{spec.plugin}]  {spec.description}")


@main.command("schema")
def schema_command() -> None:
    """Print the JSON schema of the run configuration (for --config files)."""
    click.echo(json.dumps(json_schema(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
