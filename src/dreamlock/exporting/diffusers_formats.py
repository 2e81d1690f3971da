"""diffusers formats: a complete pipeline folder, and a LoRA folder for ``load_lora_weights``.

``diffusers``: the run's result as a plain pipeline folder of its family (``StableDiffusionPipeline``...) (safetensors, at
``--dtype``): a full run re-saved; a LoRA fused into the base's weights (``--lora-scale`` applied);
learned tokens added to the tokenizer and the text encoder's embedding table. It loads with
``StableDiffusionPipeline.from_pretrained(folder)`` and needs nothing from dreamlock.

``diffusers-lora``: ``pytorch_lora_weights.safetensors`` written by the family pipeline's
``save_lora_weights``, with the peft LoraConfig as adapter metadata (the
run's own, or one rebuilt from the rank/alpha found, so alpha is never lost), so that
``pipe.load_lora_weights(folder)`` works. Pivotal runs get their embeddings next to it in the
diffusers textual-inversion format (``learned_embeds.safetensors`` for one token).
"""

from __future__ import annotations

from pathlib import Path

from dreamlock.exporting.common import ExportJob, cast_state, lora_components, lora_config, read_run_lora, run_pipeline


def export_pipeline(job: ExportJob) -> Path:
    pipe = run_pipeline(job)
    pipe.to(dtype=job.dtype)
    pipe.save_pretrained(str(job.out), safe_serialization=True)
    return job.out


def export_lora(job: ExportJob) -> Path:
    from dreamlock.exporting.embeddings import write_diffusers_embeddings
    from dreamlock.families import get_family

    lora = read_run_lora(job.run_dir, job.info)
    layers: dict[str, dict] = {}
    metadata: dict[str, dict] = {}
    for component in lora_components(job.info):
        prefix = component + "."
        state = {k[len(prefix):]: v.float() for k, v in lora.state.items() if k.startswith(prefix)}
        if not state:
            continue
        state = {k: (v * job.lora_scale if ".lora_B." in k else v) for k, v in state.items()}
        layers[component] = cast_state(state, job.dtype)
        metadata[component] = lora.metadata.get(component) or lora_config(lora.component(component), lora.use_dora).to_dict()
    job.out.mkdir(parents=True, exist_ok=True)
    get_family(job.info.family).save_lora(job.out, layers, metadata)
    if job.info.has_embeddings:
        write_diffusers_embeddings(job, job.out)
    return job.out
