"""The Python API mirrors the CLI: each `dreamlock.<step>` is the step's function, also after the
modules behind it were imported (their names differ from the functions', so nothing shadows them)."""

import importlib
import logging

import pytest

import dreamlock


def test_api_functions_are_functions():
    for name in ("prepare", "caption", "train", "generate", "evaluate", "export", "demo"):
        fn = getattr(dreamlock, name)
        module = importlib.import_module(fn.__module__)
        assert callable(fn) and getattr(dreamlock, name) is getattr(module, name), name


@pytest.mark.parametrize("logger,text", [
    ("transformers.utils.import_utils", "CLIPImageProcessor requires torchvision (not installed)"),
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community: refused"),
    ("kernels._internals.hf_hub", "Skipping publisher trust check for 'x/y' because Hugging Face Hub is in offline mode."),
])
def test_library_import_notices_are_dropped_and_others_kept(logger, text, caplog):
    """Plumbing: the import-time notices a user cannot act on are dropped; the same loggers' other
    messages still reach the user (the filters are installed by importing dreamlock, above)."""
    log = logging.getLogger(logger)
    with caplog.at_level(logging.WARNING, logger=logger):
        log.warning(text)
        log.warning("something else went wrong")
    messages = [r.getMessage() for r in caplog.records if r.name == logger]
    assert messages == ["something else went wrong"]
