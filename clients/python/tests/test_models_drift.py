"""The generated models and the packaged schemas must match `schemas/json/`.

Regenerates `models.py` in memory from the repository's schemas and
compares it with the committed module; compares the package's schema
copies (in the source tree and in the installed package) byte for byte.
"""

from __future__ import annotations

import difflib
import importlib.util
from importlib import resources
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[3]
CLIENT = REPO / "clients" / "python"
SCHEMAS = REPO / "schemas" / "json"
FIX = "run `python3 clients/python/tools/generate_models.py` and commit the result"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_models", CLIENT / "tools" / "generate_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_models_match_the_schemas() -> None:
    fresh = generator().render(SCHEMAS)
    committed = (CLIENT / "src" / "runfleet" / "models.py").read_text(encoding="utf-8")
    if fresh != committed:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    fresh.splitlines(keepends=True),
                    "committed models.py",
                    "generated from schemas/json",
                )
            )[:60]
        )
        raise AssertionError(f"src/runfleet/models.py has drifted from schemas/json/: {FIX}\n{diff}")


def test_packaged_schemas_equal_the_repository_schemas() -> None:
    expected = generator().schema_files(SCHEMAS)
    source = CLIENT / "src" / "runfleet" / "schemas"
    installed = resources.files("runfleet").joinpath("schemas")
    for name, data in expected.items():
        assert (source / name).read_bytes() == data, f"src/runfleet/schemas/{name} differs from schemas/json/{name}: {FIX}"
        assert installed.joinpath(name).read_bytes() == data, (
            f"the installed package's schemas/{name} differs from schemas/json/{name}: reinstall the package "
            f"(clients/python/run-tests does), or {FIX}"
        )
    extra = {p.name for p in source.glob("*.json")} - set(expected)
    assert not extra, f"src/runfleet/schemas holds files the generator does not copy: {sorted(extra)}: {FIX}"


def test_every_message_kind_has_a_model() -> None:
    import runfleet.models as models

    assert set(models.MESSAGE_TYPES) == set(generator().MESSAGE_KINDS)
    assert "output_chunks" in models.Receipt.__annotations__
