"""The likeness metrics, as plain functions on embeddings and booleans.

All embeddings are L2-normalised rows ([N, D]); similarity is cosine. Names are fixed and shared
by every scorer:

- ``subject_fidelity``: mean cosine similarity over all (generated, reference) pairs of subject
  prompts (DreamBench's DINO / CLIP-I); ``subject_fidelity_rel`` divides it by the mean
  reference-vs-reference similarity (off-diagonal pairs), so 1.0 means "as alike as the
  references are to each other".
- ``prompt_fidelity``: fraction of subject-prompt generations whose prompted attributes match.
- ``judged_subject``: fraction of subject-prompt generations judged to be the subject (:func:`is_subject`);
  ``judged_in_scene``: the same, counting only those in the prompt's scene (:func:`in_asked_scene`).
- ``class_drift`` (PRES, as the DreamBooth paper defines it): mean cosine similarity over all
  (class-prompt generation, reference) pairs, i.e. :func:`subject_fidelity` of the class-prompt
  generations (lower is better: the class prompt should not draw the subject).
  ``class_drift_share``: the fraction of class-prompt generations judged to be the subject, see
  :func:`drift_threshold`.
- ``diversity`` (DIV): mean pairwise distance among the generations of one prompt, averaged over
  prompts. With a scorer that gives layout feature maps it is :func:`layout_diversity` (a
  perceptual distance that sees pose, position and scene, as the paper's LPIPS); otherwise the
  older :func:`diversity`, ``1 - cos`` of identity embeddings (which measures identity
  inconsistency rather than variety).
"""

from __future__ import annotations

from typing import Sequence

import torch


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarities [len(a), len(b)] of (re-normalised) rows."""
    a = torch.nn.functional.normalize(a.float(), dim=1)
    b = torch.nn.functional.normalize(b.float(), dim=1)
    return a @ b.T


def off_diagonal_mean(sim: torch.Tensor) -> float:
    """Mean of a square similarity matrix without its diagonal (NaN below 2 rows)."""
    n = sim.shape[0]
    if n < 2:
        return float("nan")
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


def reference_self_similarity(ref: torch.Tensor) -> float:
    """Mean reference-vs-reference cosine similarity (off-diagonal pairs)."""
    return off_diagonal_mean(cosine_matrix(ref, ref))


def subject_fidelity(gen: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """``(subject_fidelity, subject_fidelity_rel)`` for generated vs reference embeddings."""
    fid = float(cosine_matrix(gen, ref).mean())
    return fid, fid / reference_self_similarity(ref)


def centroid(ref: torch.Tensor) -> torch.Tensor:
    """The normalised mean of the reference embeddings [D]."""
    return torch.nn.functional.normalize(torch.nn.functional.normalize(ref.float(), dim=1).mean(0), dim=0)


def leave_one_out_similarity(ref: torch.Tensor) -> torch.Tensor:
    """Each reference's similarity to the centroid of the *other* references [N]."""
    ref = torch.nn.functional.normalize(ref.float(), dim=1)
    total = ref.sum(0, keepdim=True)
    others = torch.nn.functional.normalize(total - ref, dim=1)
    return (ref * others).sum(1)


#: Without impostors, a generation is "the subject" above this fraction of the references'
#: leave-one-out similarity (a fallback for scorers that cannot render other subjects).
FALLBACK_THRESHOLD_FRACTION = 0.8


def drift_threshold(ref: torch.Tensor, impostors: torch.Tensor | None = None) -> tuple[float, dict]:
    """The similarity-to-reference-centroid above which an image "is the subject".

    With impostors (other subjects of the same class, plain class objects), the threshold is the
    midpoint between the references' own similarity to the centroid of the others (leave-one-out
    mean, ``s_ref``) and the most subject-like impostor's similarity to the reference centroid
    (``s_imp_max``): ``tau = (s_ref + s_imp_max) / 2``. Everything more alike than halfway from the
    best impostor to a real reference counts as the subject. Without impostors:
    ``tau = 0.8 * s_ref`` (a crude fallback, flagged in the returned info).
    """
    s_ref = float(leave_one_out_similarity(ref).mean())
    if impostors is None or len(impostors) == 0:
        tau = FALLBACK_THRESHOLD_FRACTION * s_ref
        return tau, {"source": "fallback", "reference_loo": s_ref}
    s_imp = cosine_matrix(impostors, centroid(ref)[None, :])[:, 0]
    s_imp_max = float(s_imp.max())
    info = {"source": "impostors", "reference_loo": s_ref, "impostor_max": s_imp_max,
            "impostor_mean": float(s_imp.mean()), "separable": s_imp_max < s_ref, "n_impostors": len(impostors)}
    return (s_ref + s_imp_max) / 2, info


def is_subject(emb: torch.Tensor, ref: torch.Tensor, tau: float) -> list[bool]:
    """Whether each embedding's similarity to the reference centroid exceeds ``tau``."""
    sims = cosine_matrix(emb, centroid(ref)[None, :])[:, 0]
    return [bool(s > tau) for s in sims]


def in_asked_scene(judged: Sequence[bool], attributes: Sequence[dict], scene: str | None) -> list[bool]:
    """Per image: judged the subject *and*, where the prompt names a scene, shown in it by the
    scorer's scene call (``judged_in_scene``). A model that draws the subject on its photos' backdrop
    whatever the prompt asks has memorised the photos: ``judged_subject`` counts those images, this
    does not."""
    return [bool(j) and (scene is None or a.get("scene") == scene) for j, a in zip(judged, attributes)]


def fraction(flags: Sequence[bool]) -> float | None:
    """Fraction of True (None for an empty list)."""
    return sum(bool(f) for f in flags) / len(flags) if len(flags) else None


def pairwise_diversity(emb: torch.Tensor) -> float:
    """Mean ``1 - cos`` over distinct pairs of one prompt's generations (NaN below 2)."""
    return 1.0 - off_diagonal_mean(cosine_matrix(emb, emb))


def diversity(groups: Sequence[torch.Tensor]) -> float | None:
    """DIV: :func:`pairwise_diversity` per prompt, averaged over prompts with >= 2 images."""
    values = [pairwise_diversity(g) for g in groups if len(g) >= 2]
    return sum(values) / len(values) if values else None


def layout_distance_matrix(features: Sequence[torch.Tensor], eps: float = 1e-10) -> torch.Tensor:
    """Pairwise perceptual distances [N, N] from per-layer spatial feature maps ([N, C, H, W] each).

    The LPIPS recipe without its learned per-channel weights: each layer's features are normalised
    to unit length over channels at every position, the squared difference is summed over
    channels and averaged over positions, and the layers are averaged:
    ``d(i, j) = mean_l mean_hw || f_l[i, :, h, w] - f_l[j, :, h, w] ||^2``. For one position this
    is ``2 - 2 cos``, so non-negative (ReLU) features give distances in [0, 2]; identical images
    give 0. Because it compares positions, it grows with changes of pose, position and scene.
    """
    if not features:
        raise ValueError("no feature maps")
    total = None
    for f in features:
        f = f.float()
        f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
        n, positions = f.shape[0], f.shape[2] * f.shape[3]
        flat = f.reshape(n, -1)
        sq = flat.pow(2).sum(dim=1) / positions
        d = (sq[:, None] + sq[None, :] - 2 * (flat @ flat.T) / positions).clamp(min=0)
        total = d if total is None else total + d
    d = total / len(features)
    d.fill_diagonal_(0)
    return d


def pairwise_layout_distance(features: Sequence[torch.Tensor]) -> float:
    """Mean :func:`layout_distance_matrix` over distinct pairs of one prompt's generations (NaN below 2)."""
    n = features[0].shape[0] if features else 0
    if n < 2:
        return float("nan")
    return float(layout_distance_matrix(features).sum() / (n * (n - 1)))


def layout_diversity(groups: Sequence[Sequence[torch.Tensor]]) -> float | None:
    """DIV: :func:`pairwise_layout_distance` per prompt (``groups[i]``: that prompt's per-layer
    feature maps), averaged over prompts with >= 2 images."""
    values = [pairwise_layout_distance(g) for g in groups if g and g[0].shape[0] >= 2]
    return sum(values) / len(values) if values else None
