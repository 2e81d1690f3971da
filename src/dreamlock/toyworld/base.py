"""The toy world's base model: a real SD-architecture pipeline pretrained from random init.

Three stages, all reproducible with one command::

    python -m dreamlock.toyworld.base --out toy-base --ship     # 2 CPU cores: ~5 h; H200: ~10 min

(the defaults are the shipped run's: 40,000 images, VAE 2,500 steps x 64, UNet 3,477 steps x 256)

1. render a captioned dataset (plain objects only; 20% of captions leave the colour out so that
   class prompts such as "a photo of a star" mean "any colour");
2. train the VAE (reconstruction + a small KL term) and set its latent scaling factor from data;
3. train UNet + text encoder with dreamlock's own ``train --method full`` on that dataset.

The recipe follows DESIGN §4's measurements: v-prediction, lr 1e-3, cross-attention only at the
two lowest resolutions, EMA weights, a scaled-linear schedule with "leading" timestep spacing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from dreamlock.progress import progress

from dreamlock.families import get_family
from dreamlock.families.build import SDArch, build_sd_pipeline
from dreamlock.model_defaults import write_model_defaults
from dreamlock.toyworld.paths import ASSET_DIR
from dreamlock.toyworld.render import render_dataset
from dreamlock.toyworld.vocab import caption_for, all_words


#: Classifier-free guidance for the shipped toy model: 1.0, i.e. no guidance (the conditional
#: prediction alone), where the toy recipes were chosen; half the sampling cost. The first base
#: never saw an empty caption and broke under guidance (94.8/81.2/78.1% class/colour/scene at 5);
#: the shipped one was continued with 10% caption dropout and holds 100/91.7/100% at 7.5
#: (benchmarks/RESULTS.md).
GUIDANCE = 1.0

TOY_ARCH = SDArch(
    sample_size=64,
    vae_channels=[16, 32, 32],
    unet_channels=[32, 64, 128],
    cross_attention=[False, True, True],
    layers_per_block=2,
    attention_head_dim=16,
    norm_num_groups=8,
    text_hidden=128,
    text_layers=3,
    text_heads=4,
    max_length=16,
    prediction_type="v_prediction",
)


def shipped_base() -> Path:
    """The base model folder shipped inside the package."""
    if not (ASSET_DIR / "model_index.json").is_file():
        from dreamlock.errors import WorkError

        raise WorkError(f"the toy base model is missing from {ASSET_DIR}; rebuild it with `python -m dreamlock.toyworld.base --out DIR`")
    return ASSET_DIR


def write_pretraining_data(folder: Path, n: int, seed: int, colourless: float = 0.2) -> Path:
    """Render ``n`` captioned images; a fraction of captions omit the colour."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 12345)
    with progress("rendering pretraining data", n) as bar:
        for i, (image, _, labels) in enumerate(render_dataset(n, seed)):
            colour = None if rng.random() < colourless else labels["colour"]
            image.save(folder / f"{i:06d}.png", compress_level=1)
            (folder / f"{i:06d}.txt").write_text(caption_for(labels["class"], colour, labels["scene"]) + "\n")
            bar.advance()
    return folder


def train_vae(vae, steps: int, batch_size: int, lr: float, seed: int, device: str, kl_weight: float = 1e-6,
              pixels: torch.Tensor | None = None) -> dict:
    """Train the VAE from scratch as a general codec (plain objects, subject looks, random textures:
    :mod:`dreamlock.toyworld.vae`), or on ``pixels`` ([N, 3, H, W] in [-1, 1]) when given; set
    ``scaling_factor`` to 1/std of the latents. Returns stats.
    (The first shipped VAE saw plain objects only; its successor was refined with
    ``python -m dreamlock.toyworld.vae``, keeping the denoiser's latent space.)"""
    from dreamlock.toyworld.vae import codec_pixels, reconstruction_loss

    if pixels is None:
        pixels, _ = codec_pixels(max(4096, batch_size * 64), seed + 777)
    vae.to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    with progress("training VAE", steps) as bar:
        for _ in range(steps):
            batch = pixels[torch.randint(0, len(pixels), (batch_size,), generator=gen)].to(device)
            dist = vae.encode(batch).latent_dist
            recon = vae.decode(dist.sample()).sample
            loss = reconstruction_loss(recon, batch) + kl_weight * dist.kl().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.advance()
    return _vae_stats(vae, pixels[:1024].to(device))


@torch.no_grad()
def _vae_stats(vae, pixels: torch.Tensor) -> dict:
    vae.eval()
    latents = vae.encode(pixels).latent_dist.mean
    recon = vae.decode(latents).sample.clamp(-1, 1)
    mse = torch.mean(((recon - pixels) / 2) ** 2).item()
    std = latents.std().item()
    vae.register_to_config(scaling_factor=1.0 / std)
    return {"psnr_db": 10 * np.log10(1.0 / mse), "latent_std": std, "latent_mean": latents.mean().item()}


def init_base(out: Path, vae_steps: int, vae_batch: int, seed: int, device: str) -> dict:
    """Random-init pipeline with the toy tokenizer, VAE trained; saved to ``out``."""
    pipe = build_sd_pipeline(TOY_ARCH, all_words(), out.parent / f".{out.name}-tokenizer", seed)
    stats = train_vae(pipe.vae, vae_steps, vae_batch, 1e-3, seed, device)
    pipe.vae.to("cpu")
    pipe.save_pretrained(out, safe_serialization=True)
    return stats


#: Share of pretraining captions replaced by the empty prompt, so that the model learns the
#: unconditional prediction classifier-free guidance needs (the first shipped run had none).
CAPTION_DROPOUT = 0.1


def pretrain_config(init: Path, data: Path, out: Path, steps: int, batch: int, minutes: float | None,
                    caption_dropout: float = CAPTION_DROPOUT, lr: float = 1e-3, warmup: int = 200) -> dict:
    """The `dreamlock train --method full` config that pretrains UNet + text encoder."""
    return dict(
        base=str(init), data=str(data), output=str(out), method="full", trigger=None, class_word=None,
        train_text_encoder=True, resolution=64, train_batch_size=batch, max_train_steps=steps,
        caption_dropout=caption_dropout,
        learning_rate=lr, lr_scheduler="constant_with_warmup", lr_warmup_steps=warmup, use_ema=True,
        ema_decay=0.999, adam_weight_decay=0.0, random_flip=False, max_train_minutes=minutes,
        checkpointing_steps=2000, checkpoints_total_limit=1, logging_steps=50, seed=0,
        validation_prompt=["a photo of a red star", "a photo of a blue heart on the beach",
                           "a photo of a green ring in the snow", "a photo of a yellow cross at night"],
        num_validation_images=4, validation_guidance=GUIDANCE,
    )


def ship(run_dir: Path, dest: Path = ASSET_DIR, dtype: torch.dtype = torch.float16) -> Path:
    """Copy a pretraining run's final pipeline into the package (fp16 halves the size)."""
    pipe = get_family("sd").load_pipeline(run_dir / "final" / "pipeline", dtype=dtype)
    shutil.rmtree(dest, ignore_errors=True)
    pipe.save_pretrained(dest, safe_serialization=True)
    write_model_defaults(dest, GUIDANCE, world="toy")  # `generate`/`evaluate` then default to them
    return dest


def widen_unet(model: Path, out: Path) -> Path:
    """Copy a toy pipeline to ``out`` with text cross-attention added at the highest UNet level
    (cross-attention only, no self-attention there: 1.4x the step time instead of 2.4x). The new
    blocks start as the identity (zeroed output projections), so the copy draws exactly what the
    original draws until it is trained further (``--from-model`` continues it)."""
    shutil.copytree(model, out, dirs_exist_ok=True)
    old = get_family("sd").load_pipeline(model).unet
    levels = len(old.config.block_out_channels)
    config = {**old.config, "down_block_types": ["CrossAttnDownBlock2D"] * levels,
              "up_block_types": ["CrossAttnUpBlock2D"] * levels, "only_cross_attention": [True] + [False] * (levels - 1)}
    new = type(old).from_config(config)
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"{model}: not a toy UNet this code can widen ({unexpected[:2]})")
    with torch.no_grad():
        for name, module in new.named_modules():
            if name.endswith("proj_out") and f"{name}.weight" in missing:
                module.weight.zero_()
                module.bias.zero_()
    shutil.rmtree(out / "unet")
    new.save_pretrained(out / "unet", safe_serialization=True)
    return out


def continue_pretraining(args: argparse.Namespace) -> None:
    """``--from-model``: more pretraining steps on a finished pipeline (its VAE and tokenizer kept),
    e.g. to teach the shipped base the empty prompt with caption dropout."""
    from dreamlock.training.api import train

    data = args.out / "data"
    if args.widen:
        args.from_model = widen_unet(args.from_model, args.out / "widened")
    t = time.time()
    if not (data / f"{args.images - 1:06d}.txt").is_file():
        write_pretraining_data(data, args.images, args.seed + 1)  # fresh renders: another seed than the first run
    render_s = time.time() - t
    config = pretrain_config(args.from_model, data, args.out / "run", args.steps, args.batch, args.minutes,
                             args.caption_dropout, args.lr, warmup=max(1, args.steps // 20))
    config["use_ema"] = False  # an EMA at 0.999 over a few hundred steps would mostly keep the old weights
    if args.resume:
        shutil.rmtree(args.out / "run" / "final", ignore_errors=True)
        (args.out / "run" / "run.json").unlink(missing_ok=True)
        config["resume"] = "latest"
    t = time.time()
    run = train(config)
    summary = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "cpu_capability": torch.backends.cpu.get_cpu_capability(), "render_s": round(render_s, 1),
               "unet_s": round(time.time() - t, 1), "steps_done": json.loads((run / "run.json").read_text())["step"],
               "args": {k: str(v) for k, v in vars(args).items()}}
    (args.out / "continue_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if args.ship:
        ship(run)


def main(argv: list[str] | None = None) -> None:
    from dreamlock.training.api import train

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="work folder (data, init model, run)")
    p.add_argument("--images", type=int, default=40_000)
    p.add_argument("--vae-steps", type=int, default=2500)
    p.add_argument("--vae-batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=3477)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--minutes", type=float, default=None, help="stop UNet training after this many minutes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ship", action="store_true", help="copy the result into the package assets")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--caption-dropout", type=float, default=CAPTION_DROPOUT, help="share of empty captions")
    p.add_argument("--from-model", type=Path, default=None,
                   help="continue pretraining this pipeline (e.g. the shipped base) instead of starting from random "
                        "weights: renders --images fresh images, keeps its VAE, trains --steps at --lr")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--widen", action="store_true",
                   help="with --from-model: first add text cross-attention at the 16x16 level (see widen_unet)")
    args = p.parse_args(argv)
    if args.from_model is not None:
        return continue_pretraining(args)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    times = {}
    t = time.time()
    data, stats = args.out / "data", None
    if not args.resume:
        write_pretraining_data(data, args.images, args.seed)
        times["render_s"] = time.time() - t
        t = time.time()
        stats = init_base(args.out / "init", args.vae_steps, args.vae_batch, args.seed, device)
        times["vae_s"] = time.time() - t
    t = time.time()
    config = pretrain_config(args.out / "init", data, args.out / "run", args.steps, args.batch, args.minutes)
    if args.resume:
        shutil.rmtree(args.out / "run" / "final", ignore_errors=True)
        (args.out / "run" / "run.json").unlink(missing_ok=True)
        config["resume"] = "latest"
    run = train(config)
    times["unet_s"] = time.time() - t
    summary = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", **times, "vae": stats,
               "steps_done": json.loads((run / "run.json").read_text())["step"], "args": {k: str(v) for k, v in vars(args).items()}}
    (args.out / "pretrain_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if args.ship:
        ship(run)


if __name__ == "__main__":
    main()
