"""The OpenCLIP text tower VideoCrafter conditions on, with its weights from the checkpoint.

Attribute names match ``cond_stage_model.model.*`` of the checkpoint (OpenCLIP's ``CLIP`` with
its visual tower removed): ``token_embedding``, ``positional_embedding``, ``transformer``,
``ln_final``, ``text_projection``, ``logit_scale``. The transformer blocks are OpenCLIP's own
(open-clip-torch), so the arithmetic is theirs; no pretrained weights are downloaded.

VideoCrafter uses the *penultimate* layer: the last block is skipped, then ``ln_final`` is applied
to every token, giving ``'b 77 1024'`` for ViT-H-14.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from fifo_videocrafter.config import TextConfig

_INSTALL = "pip install 'fifo-diffusion[videocrafter]' (or pip install open-clip-torch)"


def _open_clip():
    try:
        import open_clip
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(f"the VideoCrafter text encoder needs open-clip-torch; {_INSTALL}") from error
    return open_clip


class OpenClipTextEncoder(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        transformer_module = _open_clip().transformer
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.positional_embedding = nn.Parameter(torch.zeros(config.context_length, config.width))
        # open-clip-torch >= 2.23 can run batch-first; older versions take 'l b d' only.
        self._batch_first = "batch_first" in inspect.signature(transformer_module.Transformer).parameters
        extra = {"batch_first": True} if self._batch_first else {}
        self.transformer = transformer_module.Transformer(
            width=config.width, layers=config.layers, heads=config.heads, **extra
        )
        self.ln_final = transformer_module.LayerNorm(config.width)
        self.text_projection = nn.Parameter(torch.zeros(config.width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.zeros(()))

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Token ids ``'b 77'`` from OpenCLIP's own BPE tokenizer (bundled with the package)."""
        return _open_clip().tokenize(prompts, context_length=self.config.context_length)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``'b l d'`` token features of the penultimate layer for token ids ``'b l'``."""
        x = self.token_embedding(tokens) + self.positional_embedding.to(self.token_embedding.weight.dtype)
        length = tokens.shape[1]
        mask = torch.full((length, length), float("-inf"), device=x.device, dtype=x.dtype).triu_(1)  # causal
        x = x if self._batch_first else x.transpose(0, 1)
        for block in self.transformer.resblocks[: self.config.layers - self.config.skip_last_layers]:
            x = block(x, attn_mask=mask)
        return self.ln_final(x if self._batch_first else x.transpose(0, 1))

    def encode(self, prompts: list[str]) -> torch.Tensor:
        return self(self.tokenize(prompts).to(self.token_embedding.weight.device))
