"""How ``data/reference_tiny.safetensors`` was made (not a test; pytest does not collect it).

It runs VideoCrafter's own modules (and FIFO-Diffusion's per-frame U-Net) on tiny configurations
with the seeded weights of ``seeded.py`` and saves their outputs. The reference code is never part
of this repository: export it elsewhere and put it on the path, with the open-clip-torch version it
was written for (2.22, whose text transformer is sequence-first):

    git -C <mirror of AILab-CVC/VideoCrafter> archive 11bcd76 | tar -x -C /tmp/vcref
    git -C <mirror of jjihwan/FIFO-Diffusion_public> archive b87ba5d | tar -x -C /tmp/fiforef
    pip install --target /tmp/vcdeps --no-deps open_clip_torch==2.22.0 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3
    PYTHONPATH=/tmp/vcdeps:/tmp/vcref:tests python tests/videocrafter/make_reference_data.py \
        tests/videocrafter/data/reference_tiny.safetensors

It first checks that the reference model's state-dict keys and shapes are exactly this adapter's.
"""
import importlib.util
import sys
import types

import torch
from torch import nn

# --- stubs for heavy imports the modules under test never use -------------------------------
for name in ("cv2", "kornia"):
    sys.modules[name] = types.ModuleType(name)
pl = types.ModuleType("pytorch_lightning")
pl.LightningModule = nn.Module
sys.modules["pytorch_lightning"] = pl

import open_clip  # 2.22.0 from /tmp/vcdeps

assert open_clip.__file__.startswith("/tmp/vcdeps"), open_clip.__file__
open_clip.factory._MODEL_CONFIGS["tiny-text"] = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16, head_width=32),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=3),
)

from omegaconf import OmegaConf
from safetensors.torch import save_file

from utils.utils import instantiate_from_config  # VideoCrafter's
from lvdm.models.samplers.ddim import DDIMSampler
from lvdm.modules.networks.openaimodel3d import UNetModel

from videocrafter.seeded import seeded_state_dict, uniform  # the repository's test helper
from fifo_videocrafter.checkpoint import expected_shapes
from fifo_videocrafter.config import TINY_VIDEOCRAFTER1, TINY_VIDEOCRAFTER2

spec = importlib.util.spec_from_file_location("fifo_openaimodel3d", "/tmp/fiforef/lvdm/modules/networks/openaimodel3d.py")
fifo_unet_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fifo_unet_module)

torch.set_grad_enabled(False)
OUT = sys.argv[1]

UNET_VC2 = dict(
    in_channels=4, out_channels=4, model_channels=32, attention_resolutions=[1, 2], num_res_blocks=1,
    channel_mult=[1, 2], num_head_channels=16, transformer_depth=1, context_dim=32, use_linear=True,
    use_checkpoint=False, temporal_conv=True, temporal_attention=True, temporal_selfatt_only=True,
    use_relative_position=False, use_causal_attention=False, temporal_length=4, addition_attention=True,
    fps_cond=True,
)
UNET_VC1 = dict(UNET_VC2, temporal_conv=False, use_relative_position=True, fps_cond=False)

config = OmegaConf.create(dict(
    target="lvdm.models.ddpm3d.LatentDiffusion",
    params=dict(
        linear_start=0.00085, linear_end=0.012, num_timesteps_cond=1, timesteps=1000, first_stage_key="video",
        cond_stage_key="caption", cond_stage_trainable=False, conditioning_key="crossattn", image_size=[8, 8],
        channels=4, scale_by_std=False, scale_factor=0.18215, use_ema=False, uncond_type="empty_seq",
        use_scale=True, scale_b=0.7,
        unet_config=dict(target="lvdm.modules.networks.openaimodel3d.UNetModel", params=UNET_VC2),
        first_stage_config=dict(
            target="lvdm.models.autoencoder.AutoencoderKL",
            params=dict(
                embed_dim=4, monitor="val/rec_loss",
                ddconfig=dict(double_z=True, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=32,
                              ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[], dropout=0.0),
                lossconfig=dict(target="torch.nn.Identity"),
            ),
        ),
        cond_stage_config=dict(
            target="lvdm.modules.encoders.condition.FrozenOpenCLIPEmbedder",
            params=dict(arch="tiny-text", freeze=True, layer="penultimate", device="cpu"),
        ),
    ),
))
model = instantiate_from_config(config).eval()

# --- the key layout: the reference's keys and shapes must be exactly ours ----------------------
reference_state = model.state_dict()
ours = expected_shapes(TINY_VIDEOCRAFTER2)
theirs = {k: tuple(v.shape) for k, v in reference_state.items()}
assert set(ours) == set(theirs), (sorted(set(ours) - set(theirs))[:10], sorted(set(theirs) - set(ours))[:10])
assert all(ours[k] == theirs[k] for k in ours), [k for k in ours if ours[k] != theirs[k]][:10]
print("key layout identical:", len(ours), "keys")

buffer_names = [k for k in reference_state if "." not in k]
weights = seeded_state_dict({k: v for k, v in theirs.items() if k not in buffer_names}, seed=0)
model.load_state_dict(weights | {k: reference_state[k] for k in buffer_names}, strict=True)

data = {f"schedule.{k}": reference_state[k].clone() for k in buffer_names}

# --- U-Net, one timestep per clip (VideoCrafter's own path) ----------------------------------
x = uniform((2, 4, 4, 8, 8), "input.x")
context = uniform((2, 77, 32), "input.context")
t = torch.tensor([999, 421])
data["unet.vc2.timesteps"] = t
data["unet.vc2.output"] = model.model.diffusion_model(x, t, context=context, fps=8)

# --- U-Net, one timestep per frame (the FIFO reference's path; batch 1, fps as a tensor) -----
fifo_unet = fifo_unet_module.UNetModel(**UNET_VC2).eval()
fifo_unet.load_state_dict(model.model.diffusion_model.state_dict(), strict=True)
frame_t = torch.tensor([3, 250, 600, 999])
data["unet.vc2_per_frame.timesteps"] = frame_t
data["unet.vc2_per_frame.output"] = fifo_unet(x[:1], frame_t, context=context[:1], fps=torch.tensor([8]))

# --- VideoCrafter1's U-Net layout (relative positions, no temporal convs, no fps) -------------
vc1 = UNetModel(**UNET_VC1).eval()
prefix = "model.diffusion_model."
ours_vc1 = {k[len(prefix):]: s for k, s in expected_shapes(TINY_VIDEOCRAFTER1).items() if k.startswith(prefix)}
theirs_vc1 = {k: tuple(v.shape) for k, v in vc1.state_dict().items()}
assert ours_vc1 == theirs_vc1, (sorted(set(ours_vc1) ^ set(theirs_vc1))[:10])
vc1.load_state_dict(seeded_state_dict(theirs_vc1, seed=1), strict=True)
data["unet.vc1.timesteps"] = t
data["unet.vc1.output"] = vc1(x, t, context=context)

# --- VAE decoder (decode_first_stage divides by the scale factor first) ----------------------
z = uniform((1, 4, 8, 8), "input.z")
data["vae.output"] = model.decode_first_stage(z)

# --- text encoder (penultimate layer, ln_final) -----------------------------------------------
prompts = ["a red panda eating bamboo, 4k", ""]
data["text.tokens"] = open_clip.tokenize(prompts)
data["text.output"] = model.get_learned_conditioning(prompts)

# --- one DDIM step with use_scale (VideoCrafter's own sampler), 64 steps, eta = 1 ------------
model.device = torch.device("cpu")  # a LightningModule attribute
sampler = DDIMSampler(model)
sampler.register_buffer = lambda name, value: setattr(sampler, name, value)  # it moves buffers to CUDA
sampler.make_schedule(64, ddim_eta=1.0, verbose=False)
data["ddim.timesteps"] = torch.as_tensor(sampler.ddim_timesteps)
for index in (63, 30, 0):
    sample = uniform((1, 4, 2, 4, 4), f"ddim.x.{index}")
    eps = uniform((1, 4, 2, 4, 4), f"ddim.eps.{index}")
    model.apply_model = lambda *args, _eps=eps, **kwargs: _eps
    step = torch.full((1,), int(sampler.ddim_timesteps[index]), dtype=torch.long)
    torch.manual_seed(index)
    x_prev, _ = sampler.p_sample_ddim(sample, None, step, index=index)
    torch.manual_seed(index)
    data[f"ddim.{index}.noise"] = torch.randn(sample.shape)
    data[f"ddim.{index}.output"] = x_prev

data = {k: v.detach().clone().contiguous() for k, v in data.items()}
save_file(data, OUT, metadata={
    "videocrafter_commit": "11bcd76fc62fb98b9715b994afe45b4fa081120c",
    "fifo_diffusion_public_commit": "b87ba5d1aec7e675c4fcadcc28e5cfeb47733451",
    "open_clip_torch": "2.22.0",
    "torch": torch.__version__,
    "weights": "tests/videocrafter/seeded.py: seeded_state_dict(seed=0) (VC2 tiny), seed=1 (VC1 tiny U-Net)",
})
for k, v in data.items():
    print(k, tuple(v.shape), v.dtype, float(v.float().abs().mean()))
