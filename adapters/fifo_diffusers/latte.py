"""Latte-1 text-to-video: ``LatteTransformer3DModel`` + SD ``AutoencoderKL`` + T5.

Loads a diffusers ``LattePipeline`` folder or hub id (subfolders ``transformer``, ``vae``,
``text_encoder``, ``tokenizer``, ``scheduler``), or components one by one.

* Timesteps: the transformer embeds one timestep per sample with ``adaln_single`` and gives the
  same adaLN-single modulation to every frame. :class:`PerFrameModulation` makes it per frame
  without touching ``forward`` (see its notes).
* Output: 8 channels, epsilon then the learned variance; only epsilon (the first ``c``) is
  returned, as ``LattePipeline`` does.
* Schedule: discrete (linear betas 1e-4..0.02, 1000 steps, epsilon) from the scheduler config.
* Decoding: the SD VAE works on single frames: one video frame per latent, no state.
* Prompts: T5 states over ``max_sequence_length`` (120) tokens, padding positions set to zero, as
  ``LattePipeline`` masks the features of a batch of prompts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Callable

import torch

from fifo_core.backbone import BackboneDefaults, StatelessDecoder
from fifo_core.compiled import CompiledDenoiser, CompileMode
from fifo_core.errors import ConfigError, PluginError
from fifo_core.schedule import NoiseSchedule
from fifo_diffusers.common import (
    ComponentLoader,
    decode_sd_frame,
    encode_sd_frames,
    place,
    require,
    resolve_device,
    resolve_dtype,
    schedule_from_scheduler,
    stack_conditioning,
)
from fifo_diffusers.defaults import LatteOptions

COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")


class PerFrameModulation:
    """Per-frame adaLN-single modulation for a ``LatteTransformer3DModel``, installed as hooks.

    Latte computes one modulation per sample, ``m = adaln_single(t)`` (six vectors: shift, scale,
    gate for attention and for the MLP), and one final embedding ``e``. FIFO needs, for
    ``timesteps`` ``'b f'``:

    1. spatial blocks (rows ``'(b f)'``, tokens ``'(h w)'``): the modulation of the row's own
       frame. A pre-hook swaps the block's ``timestep`` argument (the repeated ``m``) for the
       per-frame ``m``; the block applies it as usual.
    2. temporal blocks (rows ``'(b h w)'``, tokens ``f``): a different modulation for each
       token. The block broadcasts one modulation over its tokens, so its arguments cannot
       carry that; instead hooks on its sub-modules redo the modulation per token: the
       output of ``norm1``/``norm2`` is stashed and the input of ``attn1``/``ff`` replaced by its
       per-token modulation; the residual sums are re-formed with per-token gates in the
       pre-hook of ``norm2`` and the forward hook of the block. Only these few element-wise
       operations are recomputed; attention and MLP run once, in the block's own code.
    3. final layer (rows ``'(b f)'``): the output of ``norm_out`` is stashed and the input of
       ``proj_out`` replaced by its modulation with the frame's own ``e``.

    The per-frame ``m`` and ``e`` come from the model's own ``adaln_single``, called once per
    frame position on ``b`` rows (the shape the model uses), and every replacement computes the
    same element-wise operations in the same order as the model. So when all frames share one
    timestep the output is bit-identical to the unmodified model's (tested). Outside
    :meth:`active` the hooks do nothing.
    """

    def __init__(self, transformer: torch.nn.Module) -> None:
        if transformer.config.norm_type != "ada_norm_single":
            raise PluginError(
                f"the Latte per-frame shim needs norm_type 'ada_norm_single', this model has {transformer.config.norm_type!r}"
            )
        for block in [*transformer.transformer_blocks, *transformer.temporal_transformer_blocks]:
            if block._chunk_size is not None:
                raise PluginError("chunked feed-forward (set_chunk_feed_forward) is not supported by the Latte shim; turn it off")
        self.model = transformer
        self._modulation: torch.Tensor | None = None  # 'b f 6 d'
        self._embedding: torch.Tensor | None = None  # '(b f) d'
        self._stash: dict[str, torch.Tensor] = {}
        self._handles = [block.register_forward_pre_hook(self._spatial, with_kwargs=True) for block in transformer.transformer_blocks]
        for block in transformer.temporal_transformer_blocks:
            if block.attn2 is not None:
                raise PluginError("Latte temporal blocks with cross-attention are not supported by the per-frame shim")
            self._install_temporal(block)
        self._handles += [
            transformer.norm_out.register_forward_hook(self._keep("norm_out")),
            transformer.proj_out.register_forward_pre_hook(self._final),
        ]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def embed(self, timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """adaLN-single modulation ``'b f 6 d'`` and final embedding ``'b f d'`` per frame."""
        model, rows = self.model, timesteps.shape[0]
        columns = [
            model.adaln_single(
                timesteps[:, frame].contiguous(),
                added_cond_kwargs={"resolution": None, "aspect_ratio": None},
                batch_size=rows,
                hidden_dtype=model.dtype,
            )
            for frame in range(timesteps.shape[1])
        ]
        modulation = torch.stack([column[0] for column in columns], dim=1)
        embedding = torch.stack([column[1] for column in columns], dim=1)
        return modulation.unflatten(-1, (6, -1)), embedding

    @contextmanager
    def active(self, timesteps: torch.Tensor) -> Iterator[None]:
        """Within the block, every frame is modulated by its own timestep ``'b f'``."""
        modulation, embedding = self.embed(timesteps)
        self._modulation, self._embedding = modulation, embedding.flatten(0, 1)
        try:
            yield
        finally:
            self._modulation = self._embedding = None
            self._stash.clear()

    # -- 1. spatial blocks -------------------------------------------------------------------

    def _spatial(self, block: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._modulation is None:
            return None
        per_frame = self._modulation.flatten(0, 1).flatten(1)  # '(b f) (6 d)'
        given = args[4] if len(args) > 4 else kwargs.get("timestep")
        if given is None or given.shape != per_frame.shape:
            raise PluginError(
                f"a Latte spatial block received a timestep of shape {None if given is None else tuple(given.shape)}, "
                f"the shim expected {tuple(per_frame.shape)}; this Latte layout is not supported"
            )
        if len(args) > 4:
            return (*args[:4], per_frame.to(given.dtype), *args[5:]), kwargs
        return args, {**kwargs, "timestep": per_frame.to(given.dtype)}

    # -- 2. temporal blocks ------------------------------------------------------------------

    def _per_token(self, block: torch.nn.Module, tokens: torch.Tensor) -> list[torch.Tensor]:
        """The block's shift/scale/gate vectors ``'b 1 f d'`` for rows ``'(b h w)'`` of ``f`` tokens."""
        modulation = block.scale_shift_table[None, None] + self._modulation.to(block.scale_shift_table.dtype)
        return [part[:, None] for part in modulation.unbind(2)]

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``'(b h w) f d'`` as ``'b (h w) f d'``, so per-frame vectors broadcast over ``h w``."""
        rows = self._modulation.shape[0]
        if x.shape[0] % rows or x.shape[1] != self._modulation.shape[1]:
            raise PluginError(
                f"a Latte temporal block received tokens of shape {tuple(x.shape)}, not '(b h w) f d' with b={rows}, "
                f"f={self._modulation.shape[1]}; this Latte layout is not supported by the shim"
            )
        return x.unflatten(0, (rows, -1))

    def _install_temporal(self, block: torch.nn.Module) -> None:
        def active() -> bool:
            return self._modulation is not None

        def begin(module, args, kwargs):
            if active():
                self._stash["x"] = args[0] if args else kwargs["hidden_states"]
                self._stash["mod"] = self._per_token(block, self._tokens(self._stash["x"]))

        def modulated(name: str, shift: int, scale: int):
            def replace(module, args):
                if active():
                    mod, y = self._stash["mod"], self._tokens(self._stash[name])
                    return ((y * (1 + mod[scale]) + mod[shift]).flatten(0, 1), *args[1:])
                return None

            return replace

        def residual_after_attention(module, args):
            if active():
                mod, x = self._stash["mod"], self._tokens(self._stash["x"])
                self._stash["h"] = ((mod[2] * self._tokens(self._stash["attn1"])) + x).flatten(0, 1)
                return (self._stash["h"], *args[1:])
            return None

        def end(module, args, kwargs, output):
            if active():
                mod, h = self._stash["mod"], self._tokens(self._stash["h"])
                return ((mod[5] * self._tokens(self._stash["ff"])) + h).flatten(0, 1)
            return None

        self._handles += [
            block.register_forward_pre_hook(begin, with_kwargs=True),
            block.norm1.register_forward_hook(self._keep("norm1")),
            block.attn1.register_forward_pre_hook(modulated("norm1", 0, 1)),
            block.attn1.register_forward_hook(self._keep("attn1")),
            block.norm2.register_forward_pre_hook(residual_after_attention),
            block.norm2.register_forward_hook(self._keep("norm2")),
            block.ff.register_forward_pre_hook(modulated("norm2", 3, 4)),
            block.ff.register_forward_hook(self._keep("ff")),
            block.register_forward_hook(end, with_kwargs=True),
        ]

    # -- 3. final layer ----------------------------------------------------------------------

    def _keep(self, name: str) -> Callable[..., None]:
        def keep(module, args, output):
            if self._modulation is not None:
                self._stash[name] = output

        return keep

    def _final(self, module: torch.nn.Module, args: tuple[Any, ...]) -> Any:
        if self._embedding is None:
            return None
        table = self.model.scale_shift_table
        shift, scale = (table[None] + self._embedding.to(table.dtype)[:, None]).chunk(2, dim=1)
        y = self._stash["norm_out"]
        if y.shape[0] != shift.shape[0]:
            raise PluginError(f"Latte's final layer received {y.shape[0]} rows, the shim prepared {shift.shape[0]} frames")
        return (y * (1 + scale) + shift,)


@torch.no_grad()
def latte_noise_prediction(
    transformer: Any,
    shim: PerFrameModulation,
    latents: torch.Tensor,
    timesteps: torch.Tensor,
    encoder_states: torch.Tensor,
    denoiser: Callable[..., Any] | None = None,
) -> torch.Tensor:
    """Epsilon ``'b c f h w'`` of a ``LatteTransformer3DModel`` at per-frame ``timesteps`` ``'b f'``:
    the first ``c`` output channels (the rest, when present, are the learned variance). The call
    goes through ``denoiser`` (the transformer compiled, see :mod:`fifo_core.compiled`) when given."""
    frames, length = latents.shape[2], transformer.config.video_length
    if frames not in (1, length):
        raise ConfigError(
            f"Latte's temporal position embedding covers exactly {length} frames (video_length), but a window of "
            f"{frames} latent frames was given; run with --f {length}",
            field="window",
        )
    parameter = next(transformer.parameters())
    device, dtype = parameter.device, parameter.dtype
    timesteps = timesteps.to(device, torch.float32)
    with shim.active(timesteps):
        output = (denoiser or transformer)(
            latents.to(device, dtype),
            timesteps[:, 0].contiguous(),
            encoder_hidden_states=encoder_states.to(device, dtype),
            return_dict=False,
        )[0]
    return output[:, : latents.shape[1]]


class LatteBackbone:
    """FIFO backbone over a ``LatteTransformer3DModel``."""

    def __init__(
        self,
        *,
        transformer: Any,
        vae: Any,
        prompt_encoder: Callable[[str], torch.Tensor],
        schedule: NoiseSchedule,
        defaults: BackboneDefaults,
        device: torch.device,
        dtype: torch.dtype,
        compile: CompileMode = "auto",
        fp8: bool = False,
        channels_last: bool = False,
    ) -> None:
        self.transformer = place(transformer, device, dtype)
        self.vae = place(vae, device, torch.float32)
        self.shim = PerFrameModulation(self.transformer)
        self.denoiser = CompiledDenoiser(self.transformer, compile, device, fp8=fp8, channels_last=channels_last)
        self.prompt_encoder = prompt_encoder
        self.schedule = schedule
        self.defaults = defaults
        self.device = device
        self.dtype = dtype
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        config = self.transformer.config
        if config.out_channels not in (None, config.in_channels, 2 * config.in_channels):
            raise PluginError(
                f"Latte predicts epsilon (and optionally a learned variance): out_channels must be {config.in_channels} "
                f"or {2 * config.in_channels}, this model has {config.out_channels}"
            )

    @classmethod
    def load(cls, defaults: BackboneDefaults, **options: Any) -> LatteBackbone:
        parsed = LatteOptions.model_validate(options)
        diffusers, transformers = require("diffusers"), require("transformers")
        device = resolve_device(parsed.device)
        dtype = resolve_dtype(parsed.dtype, device)
        loader = ComponentLoader(parsed, COMPONENTS)
        scheduler = loader.scheduler()
        return cls(
            transformer=loader.load("transformer", diffusers.LatteTransformer3DModel, torch_dtype=dtype),
            vae=loader.load("vae", diffusers.AutoencoderKL, torch_dtype=torch.float32),
            prompt_encoder=loader.t5_prompt_encoder(transformers.T5EncoderModel, device, dtype, parsed.max_sequence_length),
            schedule=schedule_from_scheduler(scheduler),
            defaults=defaults,
            device=device,
            dtype=dtype,
            compile=parsed.compile,
            fp8=parsed.fp8,
            channels_last=parsed.channels_last,
        )

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        factor = self.vae_scale * self.transformer.config.patch_size
        if height % factor or width % factor:
            raise ConfigError(f"height and width must be multiples of {factor} for Latte, got {height}x{width}", field="height")
        return (self.transformer.config.in_channels, height // self.vae_scale, width // self.vae_scale)

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        return self.prompt_encoder(prompt)

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[torch.Tensor]) -> torch.Tensor:
        """Noise prediction ``'b c f h w'`` (epsilon only) at per-frame ``timesteps`` ``'b f'``."""
        return latte_noise_prediction(self.transformer, self.shim, latents, timesteps, stack_conditioning(conditioning), self.denoiser)

    def frame_decoder(self) -> StatelessDecoder:
        return StatelessDecoder(lambda latent: decode_sd_frame(self.vae, latent))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Video frames ``'t 3 h w'`` in ``[-1, 1]`` to latents ``'t c h w'`` (``--init-video``)."""
        return encode_sd_frames(self.vae, frames)
