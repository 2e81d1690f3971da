"""The Python API mirrors the CLI: each `dreamlock.<step>` is the step's function, also after the
modules behind it were imported (their names differ from the functions', so nothing shadows them)."""

import importlib

import dreamlock


def test_api_functions_are_functions():
    for name in ("prepare", "caption", "train", "generate", "evaluate", "export", "demo"):
        fn = getattr(dreamlock, name)
        module = importlib.import_module(fn.__module__)
        assert callable(fn) and getattr(dreamlock, name) is getattr(module, name), name
