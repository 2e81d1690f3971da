"""The likeness metrics, as plain functions on embeddings and booleans.

All embeddings are L2-normalised rows ([N, D]); similarity is cosine. Names are fixed and shared
by every scorer:

- ``subject_fidelity``: mean cosine similarity over all (generated, reference) pairs of subject
  prompts (DreamBench's DINO / CLIP-I); ``subject_fidelity_rel`` divides it by the mean
  reference-vs-reference similarity (off-diagonal pairs), so 1.0 means "as alike as the
  references are to each other".
- ``prompt_fidelity``: fraction of subject-prompt generations whose prompted attributes match.
- ``class_drift`` (PRES): fraction of class-prompt generations judged to be the subject, see
  :func:`drift_threshold` (lower is better).
- ``diversity`` (DIV): mean pairwise distance ``1 - cos`` among the generations of one prompt,
  averaged over prompts.
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
