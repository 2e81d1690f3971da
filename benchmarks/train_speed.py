"""Training speed: start-up split, steady seconds per step, images/s, peak memory, and the overhead
of dreamlock's step against a bare loop; optionally side by side with diffusers' reference script.

Models: ``toy`` (the shipped toy base), ``sd15`` (Stable Diffusion 1.5's architecture from its
published configs, ``benchmarks/configs/sd15.json``, with random weights: compute does not depend
on them), or a diffusers folder. Prints a table and writes JSON.

    python benchmarks/train_speed.py --model sd15 --resolution 256 --steps 10 --prior 4
    python benchmarks/train_speed.py --model sd15 --resolution 256 --steps 10 --prior 4 \\
        --reference-script /path/to/train_dreambooth_lora.py   # your copy of diffusers' example

Side-by-side mode runs both as whole processes from a cold start (imports, loading, class-image
generation into an empty folder, training, saving) on the same model, images, steps, batch,
resolution, rank, learning rate and prior-preservation settings, and reports wall time and peak
RSS (CPU) of each. The reference imports torchvision for its transforms; torchvision's registry
build does not load beside the CPU torch, so the reference runs with a small stand-in module
written here (PIL resize and crop, to-tensor, normalise), the same work torchvision's PIL path does.
"""

from __future__ import annotations

import argparse
import json
import re
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w
import torch

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
WORDS = "a photo of sks dog heart star".split()


# ---- models and data -----------------------------------------------------------------------------
def build_sd15(out: Path) -> Path:
    """SD1.5's architecture with random weights, saved as a diffusers folder (once)."""
    if (out / "model_index.json").is_file():
        return out
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from dreamlock.families.tokenizer import build_clip_tokenizer

    spec = {k: v for k, v in json.loads((CONFIGS / "sd15.json").read_text()).items() if not k.startswith("_")}
    torch.manual_seed(0)
    tokenizer = CLIPTokenizer.from_pretrained(build_clip_tokenizer(WORDS, out.parent / ".sd15-tokenizer",
                                                                   spec["tokenizer_max_length"]))
    text = CLIPTextConfig(**spec["text_encoder"], bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    scheduler = {k: v for k, v in spec["scheduler"].items() if not k.startswith("_")}
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**spec["vae"]), text_encoder=CLIPTextModel(text), tokenizer=tokenizer,
        unet=UNet2DConditionModel(**spec["unet"]), scheduler=PNDMScheduler(**scheduler),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def model_folder(name: str, work: Path) -> Path:
    if name == "toy":
        from dreamlock.toyworld.base import shipped_base

        return Path(shipped_base())
    if name == "sd15":
        return build_sd15(work / "sd15")
    return Path(name)


def instance_images(work: Path, n: int) -> Path:
    from dreamlock.toyworld.subjects import builtin_subject, write_reference_set

    folder = work / "instance"
    if not folder.exists():
        write_reference_set(builtin_subject("dotty-heart"), folder, n=n)
    return folder


def given_class_images(args, work: Path) -> Path | None:
    """The class images both sides are given (None: both generate them)."""
    if args.generate_class_images or not args.prior:
        return None
    if args.class_data:
        return args.class_data
    from dreamlock.toyworld.subjects import builtin_subject, write_reference_set

    folder = work / "class-given"
    if not folder.exists():
        write_reference_set(builtin_subject("stripy-star"), folder, n=args.prior)
    return folder


def train_config(args, model: Path, data: Path, out: Path, class_dir: Path) -> dict:
    return dict(class_data_dir=str(args.class_given) if args.class_given else None, base=str(model), data=str(data), output=str(out),
                method="lora", rank=args.rank,
                learning_rate=1e-4, train_batch_size=args.batch, resolution=args.resolution,
                max_train_steps=args.warmup + args.steps, trigger="sks", class_word="dog",
                instance_prompt="a photo of sks dog", class_prompt="a photo of dog", use_captions=False,
                with_prior_preservation=args.prior > 0, num_class_images=max(args.prior, 1),
                class_cache_dir=str(class_dir), sample_batch_size=4, mixed_precision=args.precision, seed=0,
                **dict(_parse_set(item) for item in args.set))


def _parse_set(item: str) -> tuple[str, object]:
    key, _, value = item.partition("=")
    return key, json.loads(value) if value in ("true", "false") or value.replace(".", "", 1).isdigit() else value


# ---- in-process: start-up split, steady steps, bare steps --------------------------------------
def peak_memory_gib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1024**3
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def bare_step_seconds(trainer, n: int) -> list[float]:
    """Forward + backward + optimizer step of the denoiser on one pre-made batch: no batch
    assembly, no prompt lookup, no logging (what any trainer must at least do)."""
    import torch.nn.functional as F

    from dreamlock.training.dataset import step_generator

    gen = step_generator(0, 0, salt=10)
    batch = trainer.data.batch(0, gen)
    latents, prompts, meta = batch.latents, batch.prompts, batch.meta
    noise, t = trainer._noise(latents, gen)
    device = trainer.accelerator.device
    latents, noise, t, meta = latents.to(device), noise.to(device), t.to(device), meta.to(device)
    objective = trainer.adapter.objective
    noisy, target = objective.add_noise(latents, noise, t), objective.target(latents, noise, t)
    text = trainer.prompts(prompts)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        with trainer.accelerator.autocast():
            pred = trainer.adapter.predict(noisy, t, text, meta)
        loss = F.mse_loss(pred.float(), target.float())
        trainer.accelerator.backward(loss)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def measure_in_process(args, model: Path, data: Path, work: Path) -> dict:
    from dreamlock.training.api import prepare_trainer
    from dreamlock.training.config import TrainConfig

    class_dir = Path(tempfile.mkdtemp(dir=work, prefix="class-"))
    started = time.perf_counter()
    run = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    trainer = prepare_trainer(TrainConfig.model_validate(train_config(args, model, data, run, class_dir)))
    startup = {k: round(v, 2) for k, v in trainer.startup.items()}
    startup["total"] = round(time.perf_counter() - started, 2)
    steps = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        trainer.optimizer_step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        steps.append(time.perf_counter() - start)
    startup["first_step"] = round(steps[0], 2)
    steady = steps[args.warmup:]
    bare = bare_step_seconds(trainer, args.steps)
    per_step = statistics.median(steady)
    images = args.batch * (2 if args.prior else 1)
    return {"startup_s": startup, "step_s_median": round(per_step, 3), "step_s_all": [round(s, 3) for s in steady],
            "bare_step_s_median": round(statistics.median(bare), 3),
            "overhead_ratio": round(per_step / statistics.median(bare), 3),
            "images_per_s": round(images / per_step, 3), "peak_memory_gib": round(peak_memory_gib(), 2)}


# ---- side by side: whole processes ---------------------------------------------------------------
TORCHVISION_STANDIN = '''"""Stand-in for the torchvision transforms diffusers' DreamBooth script uses (PIL + torch)."""
import enum

import numpy as np
import torch
from PIL import Image


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    LANCZOS = "lanczos"


_PIL = {InterpolationMode.NEAREST: Image.NEAREST, InterpolationMode.BILINEAR: Image.BILINEAR,
        InterpolationMode.BICUBIC: Image.BICUBIC, InterpolationMode.LANCZOS: Image.LANCZOS}


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class Resize:
    def __init__(self, size, interpolation=InterpolationMode.BILINEAR):
        self.size, self.interpolation = size, interpolation

    def __call__(self, image):
        w, h = image.size
        scale = self.size / min(w, h)
        return image.resize((round(w * scale), round(h * scale)), _PIL.get(self.interpolation, Image.BILINEAR))


class CenterCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, image):
        w, h = image.size
        left, top = (w - self.size) // 2, (h - self.size) // 2
        return image.crop((left, top, left + self.size, top + self.size))


class RandomCrop(CenterCrop):
    def __call__(self, image):
        w, h = image.size
        left = int(torch.randint(0, w - self.size + 1, (1,)))
        top = int(torch.randint(0, h - self.size + 1, (1,)))
        return image.crop((left, top, left + self.size, top + self.size))


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, image):
        return image.transpose(Image.FLIP_LEFT_RIGHT) if torch.rand(1) < self.p else image


class ToTensor:
    def __call__(self, image):
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean[0], std[0]

    def __call__(self, x):
        return (x - self.mean) / self.std
'''


#: Runs the reference with the stand-in importable by it, but only after transformers, diffusers and
#: peft have decided torchvision is absent (with it "present", transformers' model imports break).
LAUNCHER = """import runpy, sys
import diffusers, peft, transformers  # noqa: F401
sys.path.insert(0, {standin!r})
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def run_process(cmd: list[str], env: dict, log: Path) -> dict:
    """Wall seconds and peak RSS (GiB) of one process run to completion."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{cmd[1]} exited {code}; see {log}")
    return {"wall_s": round(wall, 1), "peak_rss_gib": round(usage.ru_maxrss / 1024**2, 2)}


def side_by_side(args, model: Path, data: Path, work: Path) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    ours_dir = Path(tempfile.mkdtemp(dir=work, prefix="ours-"))
    config = train_config(args, model, data, ours_dir / "run", ours_dir / "class")
    config["max_train_steps"] = args.steps
    (ours_dir / "train.toml").write_text(tomli_w.dumps({k: v for k, v in config.items() if v is not None}))
    ours = run_process([sys.executable, "-m", "dreamlock", "train", str(ours_dir / "train.toml")], env,
                       ours_dir / "log.txt")
    ref_dir = Path(tempfile.mkdtemp(dir=work, prefix="reference-"))
    standin = ref_dir / "standin" / "torchvision"
    standin.mkdir(parents=True)
    (standin / "__init__.py").write_text("from . import transforms\n")
    (standin / "transforms.py").write_text(TORCHVISION_STANDIN)
    (ref_dir / "launch.py").write_text(LAUNCHER.format(standin=str(ref_dir / "standin")))
    ref_env = env
    cmd = [sys.executable, str(ref_dir / "launch.py"), str(args.reference_script), "--pretrained_model_name_or_path", str(model),
           "--instance_data_dir", str(data), "--instance_prompt", "a photo of sks dog", "--class_prompt",
           "a photo of dog", "--class_data_dir", str(args.class_given or ref_dir / "class"),
           "--output_dir", str(ref_dir / "out"),
           "--resolution", str(args.resolution), "--train_batch_size", str(args.batch), "--rank", str(args.rank),
           "--learning_rate", "1e-4", "--max_train_steps", str(args.steps), "--seed", "0",
           "--checkpointing_steps", "100000", "--mixed_precision", "no", "--report_to", "tensorboard"]
    if args.prior:
        cmd += ["--with_prior_preservation", "--num_class_images", str(args.prior), "--sample_batch_size", "4"]
    reference = run_process(cmd, ref_env, ref_dir / "log.txt")
    if args.class_given is None and args.prior:  # both generated their class images: how long that took
        ours["class_images_s"] = ours_class_seconds((ours_dir / "log.txt").read_text())
        reference["class_images_s"] = reference_class_seconds((ref_dir / "log.txt").read_text())
    ours["log"], reference["log"] = str(ours_dir / "log.txt"), str(ref_dir / "log.txt")
    return {"dreamlock": ours, "reference": reference,
            "wall_ratio": round(reference["wall_s"] / ours["wall_s"], 2),
            "memory_ratio": round(ours["peak_rss_gib"] / reference["peak_rss_gib"], 2)}


def ours_class_seconds(log: str) -> float | None:
    """dreamlock's progress line for class images: ``class images: 'a photo of dog': 40/40 (100%) · 1m05s elapsed``."""
    found = re.findall(r"^class images: '.*?(\d+)/\1 \(100%\) · (?:(\d+)m)?(\d+)s elapsed", log, re.MULTILINE)
    return float(int(found[-1][1] or 0) * 60 + int(found[-1][2])) if found else None


def reference_class_seconds(log: str) -> float | None:
    """The reference's tqdm bar: ``Generating class images: 100%|...| 10/10 [01:23<00:00, ...]``."""
    found = re.findall(r"Generating class images: 100%.*?\[(?:(\d+):)?(\d+):(\d+)<", log)
    return float(int(found[-1][0] or 0) * 3600 + int(found[-1][1]) * 60 + int(found[-1][2])) if found else None


# ---- report --------------------------------------------------------------------------------------
def reparse(out: Path, tag: str, ours_log: str, reference_log: str) -> None:
    """Class-generation seconds of the side-by-side entry ``tag``, read again from its logs (the
    first reader of dreamlock's log took the class images' *encoding* line)."""
    runs = json.loads(out.read_text())
    entry = next(r for r in runs if r.get("tag") == tag and "side_by_side" in r)
    s = entry["side_by_side"]
    s["dreamlock"].update(class_images_s=ours_class_seconds(Path(ours_log).read_text()), log=ours_log)
    s["reference"].update(class_images_s=reference_class_seconds(Path(reference_log).read_text()), log=reference_log)
    out.write_text(json.dumps(runs, indent=2))
    print(table(entry))


def machine() -> dict:
    model = platform.processor()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": model, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "gpu": gpu, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}


def table(result: dict) -> str:
    m = result.get("in_process")
    lines = [f"{result['model']} at {result['resolution']} px, batch {result['batch']}, LoRA rank {result['rank']}, "
             f"prior {result['prior']} class images; {result['machine']['cpu']} ({result['machine']['cpu_capability']}, "
             f"{result['machine']['threads']} threads)",
             "| figure | value |", "|---|---|"]
    if m:
        lines += [f"| start-up: {k} | {v} s |" for k, v in m["startup_s"].items()]
        lines += [f"| seconds / step (median of {len(m['step_s_all'])}) | {m['step_s_median']} |",
                  f"| bare step (forward + backward + optimizer) | {m['bare_step_s_median']} |",
                  f"| overhead ratio (full / bare) | {m['overhead_ratio']} |",
                  f"| images / s | {m['images_per_s']} |", f"| peak memory | {m['peak_memory_gib']} GiB |"]
    if "side_by_side" in result:
        s = result["side_by_side"]
        lines += [f"| whole run, dreamlock | {s['dreamlock']['wall_s']} s, {s['dreamlock']['peak_rss_gib']} GiB |",
                  f"| whole run, reference script | {s['reference']['wall_s']} s, {s['reference']['peak_rss_gib']} GiB |",
                  f"| reference / dreamlock wall time | {s['wall_ratio']}x |",
                  f"| dreamlock / reference peak RSS | {s['memory_ratio']} |"]
        if s["dreamlock"].get("class_images_s") is not None and s["reference"].get("class_images_s"):
            lines += [f"| class images, dreamlock / reference | {s['dreamlock']['class_images_s']} s / "
                      f"{s['reference']['class_images_s']} s |"]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="sd15", help="toy | sd15 | a diffusers folder")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--prior", type=int, default=4, help="class images (0: no prior preservation)")
    p.add_argument("--steps", type=int, default=10, help="steady steps measured")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precision", default="auto", help="mixed_precision: auto | no | bf16 | fp16")
    p.add_argument("--set", action="append", default=[], help="a training key for dreamlock's runs: --set channels_last=true")
    p.add_argument("--class-data", type=Path, help="given class images for both sides (default: toy renders)")
    p.add_argument("--generate-class-images", action="store_true", help="both sides generate the class images")
    p.add_argument("--reference-script", type=Path, help="your copy of diffusers' train_dreambooth_lora.py")
    p.add_argument("--skip-in-process", action="store_true")
    p.add_argument("--tag", default="", help="a label kept in the JSON (repeats of one setting)")
    p.add_argument("--work", type=Path, default=Path("runs/train_speed"))
    p.add_argument("--out", type=Path, default=HERE / "train_speed.json")
    p.add_argument("--reparse", nargs=3, metavar=("TAG", "OURS_LOG", "REFERENCE_LOG"),
                   help="re-read both class-generation times of the entry tagged TAG from its two logs")
    args = p.parse_args()
    if args.reparse:
        return reparse(args.out, *args.reparse)
    args.work.mkdir(parents=True, exist_ok=True)
    model = model_folder(args.model, args.work)
    data = instance_images(args.work, 4)
    args.class_given = given_class_images(args, args.work)  # the class images both sides are given, if any
    result = {"model": args.model, "resolution": args.resolution, "batch": args.batch, "rank": args.rank,
              "prior": args.prior, "tag": args.tag, "class_images": "generated" if args.class_given is None else "given",
              "machine": machine(), "command": " ".join(sys.argv)}
    if args.reference_script:
        result["side_by_side"] = side_by_side(args, model, data, args.work)  # first: cold caches for both
    if not args.skip_in_process:
        result["in_process"] = measure_in_process(args, model, data, args.work)
    print(table(result))
    runs = json.loads(args.out.read_text()) if args.out.is_file() else []
    runs = [r for r in runs if r.get("command") != result["command"]] + [result]
    args.out.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
