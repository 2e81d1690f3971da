"""Training methods: which parameters train, how they are saved. One module per method.

A method talks to the model only through the family adapter and never branches on the family.
"""

from __future__ import annotations

import importlib

from dreamlock.errors import UserError

METHODS: dict[str, str] = {
    "full": "dreamlock.methods.full:FullFineTune",
    "lora": "dreamlock.methods.lora:LoRA",
    "ti": "dreamlock.methods.ti:TextualInversion",
    "pivotal": "dreamlock.methods.pivotal:PivotalTuning",
    "ip2p": "dreamlock.methods.ip2p:InstructPix2Pix",
    "sr": "dreamlock.methods.sr:SuperResolution",
}


def get_method(name: str):
    if name not in METHODS:
        raise UserError(f"unknown method '{name}'; choose one of: {', '.join(METHODS)}")
    module, attr = METHODS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build_method(name: str, adapter, config):
    """Freeze the whole model, then let the method unfreeze (or add) what it trains."""
    from dreamlock.methods.base import freeze_all

    freeze_all(adapter)
    return get_method(name)(adapter, config)
