"""The oracle: a small CNN that judges toy-world images.

It predicts class, colour and scene (and a subject's detail and detail colour), and gives a
64-d L2-normalised identity embedding in which renders of the same subject cluster and different
subjects separate, whatever the scene. It is trained on renders with augmentation (elastic warp,
coloured specks, down-up scaling, blur, colour jitter with small hue shifts, noise) because it must
judge blurry, blotchy generations from a small diffusion model.

Its identity embedding must need outline, body colour and detail together: each batch also holds
hard negatives (:mod:`dreamlock.toyworld.negatives`: the subject's colours and pattern through a
wrong or broken outline, bands, blobs, pieces, the outline without the detail or with the scene
showing through where the detail belongs, other colours),
pushed away by the contrastive loss and below a margin by :func:`negative_hinge`. Subject looks in
``negatives.held_out`` (about 15%, and the built-in subjects) never appear in training, so the
verdict can be checked on looks the oracle has not seen. The verdict threshold
(``subject_threshold``: cosine to the reference centroid) is chosen on trained looks and reported
on held-out ones (``verification`` in ``oracle.json``; ``benchmarks/lab.py``).

The shipped weights live in ``assets/oracle.safetensors`` (+ ``oracle.json``, which records the
command). They are the first oracle (2000 steps from scratch, no negatives; commit 8a4c9dc)
fine-tuned with hard negatives in three runs of 1000 steps, each from the one before: with nine
kinds (commit 9c55da4); with all ten, adding ``punched``; then with ``punched`` drawn 4x as often
(``oracle.json`` records all three)::

    python -m dreamlock.toyworld.oracle --out STEP --steps 1000 --lr 1e-3 \
        --neg-views 2 --neg-margin 0.2 --init PREVIOUS_ORACLE_DIR
    python -m dreamlock.toyworld.oracle --out src/dreamlock/toyworld/assets --steps 1000 --lr 1e-3 \
        --neg-views 3 --neg-margin 0.2 --kind-weight punched=4 --init STEP

(``--max-minutes`` cuts a run into resumable chunks: repeat the command until it writes the
weights; the result is the same as one uninterrupted run.)

Training objective: cross-entropy on every attribute head (positives only), plus a
supervised-contrastive loss on the embedding whose positives are renders of the same look (class,
colour, detail, detail colour) in different poses and scenes; plain objects take part as looks of
their own, so a plain red star and a red star with white stripes are pushed apart.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from dreamlock.errors import UserError
from dreamlock.toyworld.negatives import NEGATIVE_KINDS, held_out, look_key, render_negative, render_negative_with_look
from dreamlock.toyworld.render import Look, render_look
from dreamlock.toyworld.subjects import make_subject
from dreamlock.toyworld.vocab import CLASSES, COLOURS, DETAIL_COLOURS, DETAILS, SCENES

ASSETS = Path(__file__).parent / "assets"
WEIGHTS_NAME = "oracle.safetensors"
CONFIG_NAME = "oracle.json"
WIDTHS = (16, 24, 48, 64, 96, 128)

#: The label spaces of every head, in order. Stored in the config so old weights stay readable.
HEADS: dict[str, list[str]] = {
    "class": list(CLASSES),
    "colour": list(COLOURS),
    "scene": list(SCENES),
    "detail": list(DETAILS),
    "detail_colour": ["none", *DETAIL_COLOURS],
}


# ---------------------------------------------------------------------------- network


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class OracleNet(nn.Module):
    """A 6-layer CNN on 64x64 RGB (~0.24M parameters): attribute heads + identity embedding."""

    def __init__(self, heads: dict[str, list[str]], widths: Sequence[int] = WIDTHS, embed_dim: int = 64):
        super().__init__()
        w = list(widths)
        self.trunk = nn.Sequential(
            _conv(3, w[0], 5, 2), _conv(w[0], w[1]),  # 64 -> 32
            _conv(w[1], w[2], 3, 2), _conv(w[2], w[3]),  # -> 16
            _conv(w[3], w[4], 3, 2), _conv(w[4], w[5]),  # -> 8
        )
        self.heads = nn.ModuleDict({name: nn.Linear(w[5], len(labels)) for name, labels in heads.items()})
        self.embed = nn.Sequential(nn.Linear(w[5], w[5]), nn.ReLU(inplace=True), nn.Linear(w[5], embed_dim))

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``x`` in [0, 1], [B, 3, 64, 64] -> (logits per head, normalised embedding [B, D])."""
        feat = self.trunk((x - 0.5) / 0.25).mean(dim=(2, 3))
        logits = {name: head(feat) for name, head in self.heads.items()}
        return logits, F.normalize(self.embed(feat), dim=1)


# ---------------------------------------------------------------------------- inference


def images_to_tensor(images: Sequence[Image.Image], size: int = 64) -> torch.Tensor:
    """PIL images (any size/mode) -> float tensor [N, 3, size, size] in [0, 1]."""
    arrays = []
    for img in images:
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
        arrays.append(np.asarray(img, dtype=np.uint8))
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch.float() / 255.0


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread for a while. The oracle is small: a second thread barely helps it,
    and on busy shared cores (more runnable jobs than cores) two threads made inference 10-30x
    slower, each op waiting for a descheduled worker."""
    old = torch.get_num_threads()
    if old != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if old != 1:
            torch.set_num_threads(old)


class Oracle:
    """The trained oracle: ``predict`` attributes, ``embed`` identity."""

    def __init__(self, net: OracleNet, config: dict):
        self.net = net.eval()
        self.config = config
        self.heads: dict[str, list[str]] = config["heads"]
        self.size: int = config.get("input_size", 64)
        #: Cosine to the reference centroid above which an image is the subject (None: not calibrated).
        self.subject_threshold: float | None = config.get("subject_threshold")

    @torch.no_grad()
    def forward(self, images: Sequence[Image.Image], batch_size: int = 256) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Probabilities per head and embeddings for a list of PIL images."""
        with single_thread():
            return self._forward(images, batch_size)

    def _forward(self, images: Sequence[Image.Image], batch_size: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        probs: dict[str, list[torch.Tensor]] = {k: [] for k in self.heads}
        embs = []
        for i in range(0, len(images), batch_size):
            logits, emb = self.net(images_to_tensor(images[i : i + batch_size], self.size))
            for k, v in logits.items():
                probs[k].append(v.softmax(dim=1))
            embs.append(emb)
        if not embs:
            return {k: torch.zeros(0, len(v)) for k, v in self.heads.items()}, torch.zeros(0, self.config["embed_dim"])
        return {k: torch.cat(v) for k, v in probs.items()}, torch.cat(embs)

    def predict(self, images: Sequence[Image.Image]) -> list[dict[str, str]]:
        """One dict per image: ``{"class", "colour", "scene", "detail", "detail_colour"}`` (argmax labels)."""
        probs, _ = self.forward(images)
        idx = {k: v.argmax(dim=1).tolist() for k, v in probs.items()}
        return [{k: self.heads[k][idx[k][i]] for k in self.heads} for i in range(len(images))]

    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """L2-normalised identity embeddings [N, 64]."""
        return self.forward(images)[1]


def _read_oracle(folder: Path) -> Oracle:
    weights, config_path = folder / WEIGHTS_NAME, folder / CONFIG_NAME
    if not weights.is_file() or not config_path.is_file():
        raise UserError(
            f"oracle weights not found in {folder} (need {WEIGHTS_NAME} and {CONFIG_NAME}); "
            "train them with `python -m dreamlock.toyworld.oracle --out DIR`"
        )
    config = json.loads(config_path.read_text())
    net = OracleNet(config["heads"], config["widths"], config["embed_dim"])
    net.load_state_dict(load_file(str(weights)))
    return Oracle(net, config)


@lru_cache(maxsize=4)
def _cached_oracle(folder: str) -> Oracle:
    return _read_oracle(Path(folder))


def load_oracle(path: str | Path | None = None) -> Oracle:
    """Load the oracle from a folder (or its ``.safetensors`` file); default: the shipped weights."""
    folder = Path(path) if path is not None else ASSETS
    if folder.suffix == ".safetensors":
        folder = folder.parent
    return _cached_oracle(str(folder.resolve()))


# ---------------------------------------------------------------------------- training data


@dataclass
class Pool:
    """Pre-rendered training views: images [N, 64, 64, 3] uint8, labels per head, look ids; and hard
    negatives (``neg_images``), each made from look ``neg_owner`` with identity id ``neg_ids``."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    look_ids: np.ndarray
    views: int
    neg_images: np.ndarray
    neg_owner: np.ndarray
    neg_ids: np.ndarray


def _random_look(rng: np.random.Generator, plain_fraction: float) -> Look:
    """A random training look: plain, or a subject look that is not held out (see ``negatives.held_out``)."""
    if rng.random() < plain_fraction:
        return Look(CLASSES[int(rng.integers(len(CLASSES)))], list(COLOURS)[int(rng.integers(len(COLOURS)))])
    while True:
        look = make_subject(rng).look()
        if not held_out(look):
            return look


def kind_probabilities(kind_weights: dict[str, float] | None) -> np.ndarray:
    """The chance of each of :data:`NEGATIVE_KINDS` being drawn (weight 1 unless ``kind_weights`` says)."""
    weights = kind_weights or {}
    unknown = set(weights) - set(NEGATIVE_KINDS)
    if unknown:
        raise UserError(f"unknown negative kind(s) {', '.join(sorted(unknown))}; choose from {', '.join(NEGATIVE_KINDS)}")
    w = np.array([float(weights.get(k, 1.0)) for k in NEGATIVE_KINDS])
    return w / w.sum()


def _render_looks(args: tuple) -> list[tuple]:
    """Render looks ``start..stop`` (each from its own ``(seed, i)`` generator): a worker's share.

    Per look: ``views`` positives ``(image, labels, look key)`` and, for subject looks,
    ``neg_views`` hard negatives ``(image, None, negative key)``."""
    seed, start, stop, views, plain_fraction, neg_views, kind_weights = args
    probs = kind_probabilities(kind_weights)
    out = []
    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        look = _random_look(rng, plain_fraction)
        items = []
        for _ in range(views):
            scene = SCENES[int(rng.integers(len(SCENES)))]
            values = {"class": look.cls, "colour": look.colour, "scene": scene, "detail": look.detail,
                      "detail_colour": look.detail_colour or "none"}
            items.append((np.asarray(render_look(look, scene, rng)), values, look_key(look)))
        for j in range(neg_views if look.detail != "none" else 0):
            # unweighted: the draw earlier pools were rendered with, so they stay reproducible
            kind = NEGATIVE_KINDS[int(rng.integers(len(NEGATIVE_KINDS)))] if kind_weights is None else \
                NEGATIVE_KINDS[int(rng.choice(len(NEGATIVE_KINDS), p=probs))]
            scene = SCENES[int(rng.integers(len(SCENES)))]
            image, painted = render_negative_with_look(look, kind, scene, rng)
            key = look_key(painted) if painted is not None else ("negative", kind, i, j)
            items.append((np.asarray(image), None, key))
        out.append(items)
    return out


def build_pool(n_looks: int, views: int, seed: int, plain_fraction: float = 0.3, workers: int = 1, neg_views: int = 2,
               kind_weights: dict[str, float] | None = None) -> Pool:
    """Render ``views`` poses (each on a random scene) of ``n_looks`` random looks, plus
    ``neg_views`` hard negatives of each subject look, of kinds drawn uniformly or by ``kind_weights``.

    Look ``i`` depends only on ``(seed, i)``, so the pool is the same for any number of workers.
    A negative that is itself a valid look (another outline, no detail, other colours) shares that
    look's identity id; a broken shape (ellipse, blob, band, pieces) gets an id of its own.
    """
    chunk = 250
    jobs = [(seed, a, min(a + chunk, n_looks), views, plain_fraction, neg_views, kind_weights)
            for a in range(0, n_looks, chunk)]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as ex:
            parts = list(ex.map(_render_looks, jobs))
    else:
        parts = [_render_looks(j) for j in jobs]
    looks = [items for part in parts for items in part]
    keys: dict[tuple, int] = {}
    pos = [(li, it) for li, items in enumerate(looks) for it in items if it[1] is not None]
    neg = [(li, it) for li, items in enumerate(looks) for it in items if it[1] is None]
    images = np.stack([it[0] for _, it in pos])
    labels = {k: np.array([HEADS[k].index(it[1][k]) for _, it in pos], dtype=np.int64) for k in HEADS}
    look_ids = np.array([keys.setdefault(it[2], len(keys)) for _, it in pos], dtype=np.int64)
    neg_ids = np.array([keys.setdefault(it[2], len(keys)) for _, it in neg], dtype=np.int64)
    neg_images = np.stack([it[0] for _, it in neg]) if neg else np.zeros((0, *images.shape[1:]), np.uint8)
    return Pool(images, labels, look_ids, views, neg_images, np.array([li for li, _ in neg], dtype=np.int64), neg_ids)


def _sample_batch(pool: Pool, looks_per_batch: int, gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of 2 different views of each of ``looks_per_batch`` random looks, and of every hard
    negative made from those looks."""
    n_looks = len(pool.images) // pool.views
    k = min(looks_per_batch, n_looks)
    looks = torch.randperm(n_looks, generator=gen)[:k]
    a = torch.randint(pool.views, (k,), generator=gen)
    b = (a + 1 + torch.randint(pool.views - 1, (k,), generator=gen)) % pool.views
    positives = torch.cat([looks * pool.views + a, looks * pool.views + b]).numpy()
    negatives = np.nonzero(np.isin(pool.neg_owner, looks.numpy()))[0]
    return positives, negatives.astype(np.int64)


# ---------------------------------------------------------------------------- augmentation


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own sigma (pixels); sigma <= 0 leaves it sharp."""
    radius = 4
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigma.clamp(min=1e-3)[:, None]
    k = torch.exp(-0.5 * (t[None, :] / s) ** 2)
    k = k / k.sum(dim=1, keepdim=True)
    k = torch.where(sigma[:, None] > 0, k, (t[None, :] == 0).to(x.dtype))
    b, c, h, w = x.shape
    k = k.repeat_interleave(c, dim=0)
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


def _hue_rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate colours about the grey axis by a per-image angle (a small hue shift)."""
    a = torch.deg2rad(degrees)[:, None, None]
    k = torch.full((3,), 3 ** -0.5, device=x.device)
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], device=x.device) * 3 ** -0.5
    eye = torch.eye(3, device=x.device)
    rot = a.cos() * eye + a.sin() * cross + (1 - a.cos()) * torch.outer(k, k)  # Rodrigues
    return torch.einsum("bij,bjhw->bihw", rot, x)


def _warp(x: torch.Tensor, gen: torch.Generator, max_px: float) -> torch.Tensor:
    """Smooth random elastic warp, up to ``max_px`` pixels: rounds and bends shapes a little."""
    b, _, h, w = x.shape
    disp = (torch.rand(b, 2, 4, 4, generator=gen, device=x.device) * 2 - 1) * (2 * max_px / w)
    disp = F.interpolate(disp, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    theta = torch.eye(2, 3, device=x.device).expand(b, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid + disp, mode="bilinear", padding_mode="border", align_corners=False)


def _clutter(x: torch.Tensor, gen: torch.Generator, density: float = 0.003) -> torch.Tensor:
    """Scatter small soft specks of random colours (generations strew such specks)."""
    b, _, h, w = x.shape
    seeds = (torch.rand(b, 1, h, w, generator=gen, device=x.device) < density).float()
    size = 3 if torch.rand(1, generator=gen, device=x.device).item() < 0.5 else 5
    blobs = F.max_pool2d(seeds, size, stride=1, padding=size // 2)
    alpha = (_gaussian_blur(blobs, torch.full((b,), 0.8, device=x.device)) * 1.5).clamp(0, 1)
    colour = F.interpolate(torch.rand(b, 3, 4, 4, generator=gen, device=x.device), size=(h, w), mode="nearest")
    return x * (1 - alpha) + colour * alpha


def _on_some(x: torch.Tensor, chosen: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn`` to the chosen images only (cheaper than computing it for all)."""
    idx = chosen.nonzero()[:, 0]
    if len(idx) == 0:
        return x
    y = x.clone()
    y[idx] = fn(x[idx])
    return y


def augment(x: torch.Tensor, gen: torch.Generator, clean_fraction: float = 0.2) -> torch.Tensor:
    """Make renders look like small-diffusion-model generations: elastic warp, specks of clutter,
    down-up scaling, blur, colour jitter (brightness, contrast, saturation, channel gains, hue
    within +-8 degrees: under half the gap between two colours' hues), noise, horizontal flip.
    A ``clean_fraction`` of the batch is left untouched (flip aside). ``gen`` must live on
    ``x``'s device."""
    b = x.shape[0]
    u = lambda *shape: torch.rand(*shape, generator=gen, device=x.device)
    pick = lambda p: (u(b) < p)[:, None, None, None]
    x = torch.where(pick(0.5), x.flip(3), x)
    keep = pick(clean_fraction)
    y = _on_some(x, u(b) < 0.5, lambda t: _warp(t, gen, 2.5))
    y = _on_some(y, u(b) < 0.3, lambda t: _clutter(t, gen))
    small = int(24 + 8 * int(u(1).item() * 4))  # 24, 32, 40 or 48 for the whole batch
    down = F.interpolate(y, size=small, mode="bilinear", antialias=True, align_corners=False)
    updown = F.interpolate(down, size=64, mode="bilinear", align_corners=False)
    y = torch.where(pick(0.5), updown, y)
    sigma = torch.where(u(b) < 0.6, 0.3 + 1.5 * u(b), torch.zeros(b, device=x.device))
    y = _gaussian_blur(y, sigma)
    y = torch.where(pick(0.7), _hue_rotate(y, 16 * u(b) - 8), y)
    grey = y.mean(dim=1, keepdim=True)
    y = grey + (y - grey) * (0.5 + 0.75 * u(b, 1, 1, 1))  # saturation
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = mean + (y - mean) * (0.75 + 0.5 * u(b, 1, 1, 1))  # contrast
    y = y * (0.5 + 0.7 * u(b, 1, 1, 1)) * (0.93 + 0.14 * u(b, 3, 1, 1))  # brightness (generations run dark), channel gains
    y = y + torch.randn(y.shape, generator=gen, device=x.device) * (0.06 * u(b, 1, 1, 1))
    return torch.where(keep, x, y.clamp(0, 1))


# ---------------------------------------------------------------------------- training


def supcon_loss(emb: torch.Tensor, ids: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss: each view is pulled to views with the same id, pushed from others."""
    sim = emb @ emb.T / temperature
    eye = torch.eye(len(ids), dtype=torch.bool, device=ids.device)
    sim = sim.masked_fill(eye, float("-inf"))
    pos = (ids[:, None] == ids[None, :]) & ~eye
    log_prob = sim.log_softmax(dim=1).masked_fill(~pos, 0.0)
    return -(log_prob.sum(dim=1) / pos.sum(dim=1).clamp(min=1)).mean()


def negative_hinge(neg: torch.Tensor, pos: torch.Tensor, owner: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Push each hard negative's embedding below ``margin`` cosine from the views of the look it was
    made from (``owner[i, j]``: negative i was made from the look of positive j)."""
    sim = neg @ pos.T
    excess = torch.relu(sim - margin)[owner]
    return excess.mean() if excess.numel() else sim.sum() * 0.0


def _cached_pool(work: Path, n_looks: int, views: int, seed: int, workers: int, neg_views: int,
                 kind_weights: dict[str, float] | None = None) -> Pool:
    """The training pool, rendered once and kept in ``work`` (reused by resumed chunks); its name
    holds the negative kinds' digest, so adding a kind never reuses a pool rendered without it."""
    kinds = zlib.crc32(("|".join(NEGATIVE_KINDS) + repr(sorted((kind_weights or {}).items()))).encode())
    path = work / f"pool-s{seed}-n{n_looks}-v{views}-neg{neg_views}-k{kinds:08x}.npz"
    fields = ("images", "look_ids", "neg_images", "neg_owner", "neg_ids")
    if path.is_file():
        data = np.load(path)
        return Pool(data["images"], {k: data[f"label_{k}"] for k in HEADS}, data["look_ids"], views,
                    data["neg_images"], data["neg_owner"], data["neg_ids"])
    pool = build_pool(n_looks, views, seed, workers=workers, neg_views=neg_views, kind_weights=kind_weights)
    work.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{f: getattr(pool, f) for f in fields}, **{f"label_{k}": v for k, v in pool.labels.items()})
    tmp.replace(path)
    return pool


def default_work_dir(seed: int) -> Path:
    """Where chunked training keeps its pool cache and checkpoint (outside the package)."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"dreamlock-oracle-seed{seed}"


def train_oracle(
    out: str | Path,
    steps: int = 2000,
    seed: int = 0,
    looks_per_batch: int = 64,
    n_looks: int = 4000,
    views: int = 6,
    lr: float = 2e-3,
    threads: int = 2,
    log_every: int = 100,
    device: str = "cpu",
    workers: int = 1,
    max_minutes: float | None = None,
    work: str | Path | None = None,
    neg_views: int = 2,
    init: str | Path | None = None,
    neg_margin: float = 0.2,
    kind_weights: dict[str, float] | None = None,
) -> dict | None:
    """Train the oracle and write ``oracle.safetensors`` + ``oracle.json`` to ``out``.

    From scratch, or fine-tuned from the oracle in ``init``. Each batch holds 2 views of
    ``looks_per_batch`` looks and one hard negative (:mod:`dreamlock.toyworld.negatives`) of each
    subject look among them, pushed apart by the supervised-contrastive loss and, below
    ``neg_margin`` cosine from their look's views, by :func:`negative_hinge`; held-out looks never
    appear; ``kind_weights`` (e.g. ``{"punched": 4}``) draws some kinds more often. Returns the config written, which
    records the held-out figures and the time taken. ``device="cuda"`` trains on a GPU;
    ``workers`` > 1 renders the training pool in parallel. With ``max_minutes`` the run stops
    after that long, leaving a checkpoint in ``work`` (default :func:`default_work_dir`), and
    returns None; calling again with the same arguments resumes it. Chunked or not, the batches
    are the same.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    work = Path(work) if work is not None else default_work_dir(seed)
    weights_tag = "".join(f"-{k}{v:g}" for k, v in sorted((kind_weights or {}).items()))
    ckpt_path = work / f"checkpoint-n{n_looks}-b{looks_per_batch}-steps{steps}-neg{neg_views}{weights_tag}.pt"
    t0, c0 = time.time(), time.process_time()
    pool = _cached_pool(work, n_looks, views, seed, workers, neg_views, kind_weights)
    print(f"pool: {len(pool.images)} views of {n_looks} looks, {len(pool.neg_images)} hard negatives "
          f"({time.time() - t0:.0f}s)", flush=True)
    net = OracleNet(HEADS)
    if init is not None:
        net.load_state_dict(load_oracle(init).net.state_dict())
    net = net.to(device, memory_format=torch.channels_last)  # ~25% faster on CPU
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    gen = torch.Generator().manual_seed(seed)  # batch sampling
    aug_gen = torch.Generator(device=device).manual_seed(seed)  # augmentation, on the training device
    state = {"step": 0, "wall_s": 0.0, "cpu_s": 0.0, "chunks": 0}
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        net.load_state_dict(ckpt["net"]), opt.load_state_dict(ckpt["opt"]), sched.load_state_dict(ckpt["sched"])
        gen.set_state(ckpt["gen"]), aug_gen.set_state(ckpt["aug_gen"].to(aug_gen.get_state().device))
        state = ckpt["state"]
        print(f"resumed at step {state['step']}", flush=True)
    images, neg_images = torch.from_numpy(pool.images), torch.from_numpy(pool.neg_images)
    labels = {k: torch.from_numpy(v).to(device) for k, v in pool.labels.items()}
    ids = torch.cat([torch.from_numpy(pool.look_ids), torch.from_numpy(pool.neg_ids)]).to(device)
    net.train()
    step = state["step"]
    while step < steps:
        pos, neg = (torch.from_numpy(i) for i in _sample_batch(pool, looks_per_batch, gen))
        x = torch.cat([images[pos], neg_images[neg]]).to(device).permute(0, 3, 1, 2).float() / 255.0
        x = augment(x, aug_gen).contiguous(memory_format=torch.channels_last)
        pos, neg = pos.to(device), neg.to(device)
        logits, emb = net(x)
        n_pos = len(pos)
        losses = {k: F.cross_entropy(v[:n_pos], labels[k][pos]) for k, v in logits.items()}
        losses["identity"] = supcon_loss(emb, torch.cat([ids[pos], ids[len(pool.look_ids) + neg]]))
        if len(neg):
            owners = torch.from_numpy(pool.neg_owner).to(device)[neg]
            losses["negatives"] = negative_hinge(emb[n_pos:], emb[:n_pos], owners[:, None] == (pos // pool.views)[None, :],
                                                 margin=neg_margin)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        if log_every and (step % log_every == 0 or step == steps):
            parts = " ".join(f"{k}={v.item():.3f}" for k, v in losses.items())
            print(f"step {step}/{steps} loss={loss.item():.3f} {parts} ({time.time() - t0:.0f}s)", flush=True)
        if max_minutes is not None and step < steps and time.time() - t0 > 60 * max_minutes:
            break
    state = {"step": step, "wall_s": state["wall_s"] + time.time() - t0, "cpu_s": state["cpu_s"] + time.process_time() - c0,
             "chunks": state["chunks"] + 1}
    if step < steps:
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                    "aug_gen": aug_gen.get_state().cpu(), "state": state}, ckpt_path)
        print(f"stopped at step {step}/{steps} after {max_minutes} min; run the same command again to resume", flush=True)
        return None
    return _finish(net, out, state, ckpt_path, dict(steps=steps, seed=seed, looks_per_batch=looks_per_batch,
                                                     n_looks=n_looks, views=views, lr=lr, threads=threads, device=device,
                                                     neg_views=neg_views, neg_margin=neg_margin, kind_weights=kind_weights,
                                                     init=str(init) if init else None))


def _finish(net: OracleNet, out: str | Path, state: dict, ckpt_path: Path, args: dict) -> dict:
    """Evaluate on held-out renders, write the weights + config, drop the checkpoint."""
    net = net.cpu().eval()
    device = args["device"]
    config = {
        "heads": HEADS, "widths": list(WIDTHS), "embed_dim": 64, "input_size": 64,
        "params": sum(p.numel() for p in net.parameters()),
        "training": {**args, "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
                     "chunks": state["chunks"], "wall_s": round(state["wall_s"], 1), "cpu_s": round(state["cpu_s"], 1),
                     "command": f"python -m dreamlock.toyworld.oracle --out OUT --steps {args['steps']} --seed {args['seed']} "
                                f"--looks-per-batch {args['looks_per_batch']} --n-looks {args['n_looks']} --lr {args['lr']} "
                                f"--neg-views {args['neg_views']} --neg-margin {args['neg_margin']} --device {device}"
                                + (f" --init {args['init']}" if args.get("init") else "")
                                + "".join(f" --kind-weight {k}={v:g}" for k, v in sorted((args.get("kind_weights") or {}).items()))},
    }
    oracle = Oracle(net, config)
    config["held_out"] = evaluate_oracle(oracle, seed=args["seed"] + 10_000)
    tuning = verification_table(oracle, held_out_looks=False, seed=args["seed"] + 20_000)
    config["subject_threshold"] = choose_threshold(tuning)
    config["verification"] = {
        "tuning_looks": summarise_verification(tuning, config["subject_threshold"]),
        "held_out_looks": summarise_verification(verification_table(oracle, True, args["seed"] + 30_000),
                                                 config["subject_threshold"]),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / WEIGHTS_NAME))
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    ckpt_path.unlink(missing_ok=True)
    _cached_oracle.cache_clear()
    return config


# ---------------------------------------------------------------------------- held-out checks


def evaluate_oracle(oracle: Oracle, seed: int = 12345, n: int = 600, n_subjects: int = 40, views: int = 4) -> dict:
    """Held-out accuracy on fresh renders and identity separation on fresh subjects.

    - ``class``/``colour``/``scene``: accuracy on ``n`` fresh plain renders (random scenes);
    - ``subject_class``/``subject_scene``: the same on fresh subjects (with details);
    - ``same_cos``/``diff_cos``: mean cosine between views of one subject vs of different subjects
      (``views`` poses on random scenes each); ``identity_top1``: each view's nearest other view is
      of the same subject.
    """
    rng = np.random.default_rng(seed)
    plain = [Look(CLASSES[int(rng.integers(len(CLASSES)))], list(COLOURS)[int(rng.integers(len(COLOURS)))]) for _ in range(n)]
    scenes = [SCENES[int(rng.integers(len(SCENES)))] for _ in range(n)]
    plain_images = [render_look(lk, sc, rng) for lk, sc in zip(plain, scenes)]
    preds = oracle.predict(plain_images)
    result = {
        "class": float(np.mean([p["class"] == lk.cls for p, lk in zip(preds, plain)])),
        "colour": float(np.mean([p["colour"] == lk.colour for p, lk in zip(preds, plain)])),
        "scene": float(np.mean([p["scene"] == sc for p, sc in zip(preds, scenes)])),
    }
    # the same renders degraded like generations (blur, down-up scaling, colour jitter, noise)
    x = augment(images_to_tensor(plain_images), torch.Generator().manual_seed(seed), clean_fraction=0.0)
    with torch.no_grad():
        logits, _ = oracle.net(x)
    calls = {k: [oracle.heads[k][i] for i in v.argmax(1).tolist()] for k, v in logits.items()}
    result["augmented_class"] = float(np.mean([c == lk.cls for c, lk in zip(calls["class"], plain)]))
    result["augmented_colour"] = float(np.mean([c == lk.colour for c, lk in zip(calls["colour"], plain)]))
    result["augmented_scene"] = float(np.mean([c == sc for c, sc in zip(calls["scene"], scenes)]))
    subjects = [make_subject(rng) for _ in range(n_subjects)]
    sub_scenes = [SCENES[int(rng.integers(len(SCENES)))] for _ in range(n_subjects * views)]
    images = [render_look(s.look(), sub_scenes[i * views + j], rng) for i, s in enumerate(subjects) for j in range(views)]
    probs, emb = oracle.forward(images)
    sub_cls = [s.cls for s in subjects for _ in range(views)]
    result["subject_class"] = float(np.mean([HEADS["class"][i] == c for i, c in zip(probs["class"].argmax(1).tolist(), sub_cls)]))
    result["subject_scene"] = float(np.mean([HEADS["scene"][i] == s for i, s in zip(probs["scene"].argmax(1).tolist(), sub_scenes)]))
    owner = torch.arange(n_subjects).repeat_interleave(views)
    sim = emb @ emb.T
    same = (owner[:, None] == owner[None, :]) & ~torch.eye(len(owner), dtype=torch.bool)
    diff = owner[:, None] != owner[None, :]
    result["same_cos"] = float(sim[same].mean())
    result["diff_cos"] = float(sim[diff].mean())
    nearest = sim.masked_fill(torch.eye(len(owner), dtype=torch.bool), -2).argmax(dim=1)
    result["identity_top1"] = float((owner[nearest] == owner).float().mean())
    return {k: round(v, 4) for k, v in result.items()}


# ---------------------------------------------------------------------------- subject verification


def _random_looks(rng: np.random.Generator, n: int, held: bool) -> list[Look]:
    looks: list[Look] = []
    while len(looks) < n:
        look = make_subject(rng).look()
        if held_out(look) == held:
            looks.append(look)
    return looks


def verification_table(oracle: Oracle, held_out_looks: bool = True, seed: int = 54321, n_looks: int = 40,
                       n_references: int = 5) -> list[dict]:
    """Similarity to the subject, for images that are and are not the subject.

    For ``n_looks`` random subject looks (held out from training, or trained ones for tuning), the
    reference centroid is the mean embedding of ``n_references`` plain-scene renders. Rows: one
    render per scene (``kind`` = ``subject``) and one hard negative per kind (on random scenes),
    each clean and degraded like a generation (``augmented``), with ``similarity`` = cosine to the
    centroid."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict] = []
    for look in _random_looks(rng, n_looks, held_out_looks):
        refs = oracle.embed([render_look(look, "plain", rng) for _ in range(n_references)])
        centre = F.normalize(refs.mean(0), dim=0)
        items = [("subject", scene, render_look(look, scene, rng)) for scene in SCENES]
        for kind in NEGATIVE_KINDS:
            scene = SCENES[int(rng.integers(len(SCENES)))]
            items.append((kind, scene, render_negative(look, kind, scene, rng)))
        clean = images_to_tensor([im for _, _, im in items])
        with torch.no_grad(), single_thread():
            for augmented, x in ((False, clean), (True, augment(clean, gen, clean_fraction=0.0))):
                sims = (oracle.net(x)[1] @ centre).tolist()
                rows += [{"look": "|".join(map(str, look_key(look))), "kind": kind, "scene": scene, "augmented": augmented,
                          "similarity": sim} for (kind, scene, _), sim in zip(items, sims)]
    return rows


def choose_threshold(rows: list[dict]) -> float:
    """The similarity above which an image counts as the subject: the value that maximises the
    worse of (subjects accepted, hard negatives rejected) over ``rows`` (tuning looks, clean and
    augmented together)."""
    sims = np.array([r["similarity"] for r in rows])
    is_subject = np.array([r["kind"] == "subject" for r in rows])
    best, best_tau = -1.0, 0.5
    for tau in np.linspace(0.0, 1.0, 201):
        score = min(float(np.mean(sims[is_subject] > tau)), float(np.mean(sims[~is_subject] <= tau)))
        if score > best:
            best, best_tau = score, float(tau)
    return round(best_tau, 3)


def summarise_verification(rows: list[dict], threshold: float) -> dict:
    """Per scene: share of subject images accepted; per negative kind: share rejected; clean and
    augmented (``aug_``) separately; with the mean similarity of each group."""
    out: dict[str, dict] = {"threshold": threshold, "accepted": {}, "rejected": {}, "mean_similarity": {}}
    for augmented in (False, True):
        prefix = "aug_" if augmented else ""
        part = [r for r in rows if r["augmented"] == augmented]
        for scene in SCENES:
            sims = [r["similarity"] for r in part if r["kind"] == "subject" and r["scene"] == scene]
            out["accepted"][prefix + scene] = round(float(np.mean([s > threshold for s in sims])), 4)
        for kind in ("subject", *NEGATIVE_KINDS):
            sims = [r["similarity"] for r in part if r["kind"] == kind]
            out["mean_similarity"][prefix + kind] = round(float(np.mean(sims)), 4)
            if kind != "subject":
                out["rejected"][prefix + kind] = round(float(np.mean([s <= threshold for s in sims])), 4)
    out["n_looks"] = len({r["look"] for r in rows})
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m dreamlock.toyworld.oracle --out DIR [--steps N] [--seed S]``"""
    parser = argparse.ArgumentParser(prog="python -m dreamlock.toyworld.oracle", description="Train the toy-world oracle.")
    parser.add_argument("--out", required=True, help="folder for oracle.safetensors + oracle.json")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--looks-per-batch", type=int, default=64, help="batch = 2 views x this many looks")
    parser.add_argument("--n-looks", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering the training pool")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop after this long and keep a checkpoint; the same command resumes it")
    parser.add_argument("--work", default=None, help="folder for the pool cache and checkpoint (default: a temp folder)")
    parser.add_argument("--neg-views", type=int, default=2, help="hard negatives rendered per subject look")
    parser.add_argument("--init", default=None, help="start from this oracle folder instead of random weights")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--neg-margin", type=float, default=0.2, help="cosine below which hard negatives are pushed")
    parser.add_argument("--kind-weight", action="append", default=[], metavar="KIND=W",
                        help="draw this negative kind W times as often as the others (repeatable)")
    args = parser.parse_args(argv)
    try:
        kind_weights = {k: float(v) for k, v in (item.split("=", 1) for item in args.kind_weight)} or None
    except ValueError:
        parser.error("--kind-weight takes KIND=WEIGHT, e.g. --kind-weight punched=4")
    try:
        kind_probabilities(kind_weights)  # name an unknown kind now, in one line, not after rendering starts
    except UserError as e:
        parser.error(f"--kind-weight: {e}")
    config = train_oracle(args.out, args.steps, args.seed, args.looks_per_batch, args.n_looks, lr=args.lr,
                          threads=args.threads, device=args.device, workers=args.workers, max_minutes=args.max_minutes,
                          work=args.work, neg_views=args.neg_views, init=args.init, neg_margin=args.neg_margin,
                          kind_weights=kind_weights)
    if config is None:
        return
    print(json.dumps({k: config[k] for k in ("held_out", "subject_threshold", "verification", "training")}, indent=2))


if __name__ == "__main__":
    main()
