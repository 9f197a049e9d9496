"""The layout rules, checked from the source (ast), so they stay true:

- no import cycle between raymer's modules (imports inside functions and type-only imports
  under ``if TYPE_CHECKING:`` count: a cycle of types is a layout that does not say what
  depends on what);
- nothing under ``raymer/serving/`` imports ``raymer.training`` (a Serve replica loads
  models through ``raymer.trained.checkpoint`` and ``raymer.trained.batches``, never the training loop);
- no module over 400 lines, no function over 60 lines;
- one decoder: only ``raymer/audio/decode.py`` imports a decoder or a resampler (PyAV, soundfile,
  torchaudio); the sample corpus's renderer writes and resamples the voices it makes;
- one inference core: a trained head meets live inputs in ``raymer/inference/core.py`` only, and
  ``raymer recognize``'s actors, Serve's deployments and the library hold its objects;
- packages by layer (``LAYERS``): none imports a layer above its own;
- one home per rule: only the speech settings read the no-speech thresholds, a setting has
  one record, and only ``raymer.drills`` ends a process on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "raymer"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The raymer modules ``name`` imports, anywhere in its code."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def _graph() -> dict[str, set[str]]:
    return {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_checker_sees_imports_inside_functions_and_finds_cycles():
    assert "raymer.training.evaluate" in _imports(
        "raymer.cli.train", MODULES["raymer.cli.train"]
    )  # imported inside cmd_evaluate
    assert "raymer.contract.spec" in _imports(
        "raymer.contract.card", MODULES["raymer.contract.card"]
    )  # type-only
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_serving_never_imports_training():
    graph = _graph()
    bad = {
        (name, dep)
        for name, deps in graph.items()
        if name.startswith("raymer.serving")
        for dep in deps
        if dep.startswith("raymer.training")
    }
    assert bad == set()


def test_modules_and_functions_stay_short():
    long_modules, long_functions = [], []
    for name, path in MODULES.items():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            long_modules.append((name, len(source.splitlines())))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long_functions.append((f"{name}.{node.name}", lines))
    assert long_modules == [] and long_functions == []


DECODERS = {"av", "soundfile", "torchaudio"}
RENDERER = "raymer.corpora.synth"  # makes audio (writes the corpus, pitch-shifts voices)


def _third_party(path: Path) -> set[str]:
    """Top-level names of the packages a module imports, anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_one_decoder():
    users = {
        name: sorted(_third_party(path) & DECODERS)
        for name, path in MODULES.items()
        if _third_party(path) & DECODERS
    }
    assert users.pop("raymer.audio.decode") == ["av"]
    assert set(users.pop(RENDERER, [])) <= {"soundfile", "torchaudio"}
    # augmentation encodes with PyAV (a codec round trip) and decodes with the one decoder
    assert users.pop("raymer.audio.augment", []) == ["av"]
    assert "raymer.audio.decode.decode_audio" in _calls(MODULES["raymer.audio.augment"])
    # live audio: raw PCM through FFmpeg's resampler, encoded chunks through the one decoder
    assert users.pop("raymer.audio.streaming", []) == ["av"]
    assert "open_audio" in _calls(MODULES["raymer.audio.streaming"])
    assert users == {}


def _calls(path: Path) -> set[str]:
    """The names this module calls (``f(...)``, ``x.f(...)``) or imports from raymer."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            out.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("raymer"):
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_one_inference_core():
    live = sorted(name for name, path in MODULES.items() if "live" in _calls(path))
    assert live == ["raymer.trained.batches"]  # LoadedModel.answer: a head on live inputs
    arrays = sorted(name for name, path in MODULES.items() if "live_arrays" in _calls(path))
    # ... and its arrays: the torch head's batch, a portable head's, the export's sample
    assert arrays == [
        "raymer.trained.batches",
        "raymer.trained.export_onnx",
        "raymer.trained.portable",
    ]
    uses = {
        "raymer.pipeline.recognize_stages": {
            "raymer.inference.listener.Listener",
            "raymer.inference.heads.Heads",
            "raymer.inference.prediction.piece",
            "raymer.inference.prediction.recording",  # a recording's row: the library's answer
        },
        "raymer.serving.deployments": {
            "raymer.inference.core.Inference",
            "raymer.inference.listener.Listener",
            "raymer.inference.heads.Heads",
            "raymer.inference.core.compose",
        },
        "raymer.inference.recognizer": {"raymer.inference.core.Inference"},
    }
    for name, needed in uses.items():
        assert needed <= _calls(MODULES[name]), (name, needed - _calls(MODULES[name]))


def test_every_imported_package_is_declared():
    """A package raymer imports is in pyproject.toml's dependencies (or an extra), not only
    pulled in by another one: its range there is what keeps vulnerable versions out."""
    import re
    import sys
    import tomllib
    from importlib.metadata import packages_distributions

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [
        d for ds in project["optional-dependencies"].values() for d in ds
    ]
    declared = {re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in specs}
    models = {  # the registry's model packages: requirements-models.txt, pinned by hash
        line.split("==")[0].strip().lower().replace("_", "-")
        for line in (PACKAGE.parent / "requirements-models.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", " "))
    }
    dists = packages_distributions()
    imported = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    missing = {}
    for module in sorted(imported - set(sys.stdlib_module_names) - {"raymer"}):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & (declared | models):
            missing[module] = sorted(names)
    assert missing == {}


SPEECH_HOME = "raymer.config.parts"  # SpeechConfig: the one no-speech rule
THRESHOLDS = {"no_speech_prob", "logprob_threshold", "min_speech_s"}


def _named(node: ast.AST) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)


def test_only_the_speech_settings_read_the_no_speech_thresholds():
    """The rule lives in ``SpeechConfig`` (``heard``, ``whisper_silent``, ``silent``): no
    other module compares a no-speech probability or reads the thresholds, so a setting the
    user changes is the rule every entry point applies (a copy in Whisper's wrapper once
    blanked windows at 0.6 whatever the settings said)."""
    found = []
    for name, path in MODULES.items():
        if name == SPEECH_HOME:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                names = {_named(n) for n in (node.left, *node.comparators)}
                if names & THRESHOLDS:
                    found.append((name, node.lineno, sorted(names & THRESHOLDS)))
            elif isinstance(node, ast.Attribute) and node.attr in THRESHOLDS - {"no_speech_prob"}:
                found.append((name, node.lineno, node.attr))
    assert found == []


def test_a_setting_has_one_record():
    """The settings parts are the records the engine receives: no class outside
    ``raymer/config`` holds a field of theirs with a default of its own (a second record
    with second defaults drifts: ``DecodeLimits``, ``SegmentOptions``, ``SpeechRule`` did)."""
    from raymer.config import parts

    settings = set()
    for cls in vars(parts).values():
        if isinstance(cls, type) and issubclass(cls, parts.Part) and cls is not parts.Part:
            settings |= set(cls.model_fields)
    settings -= {"no_speech_prob"}  # also what Whisper measures (SpeechFeatures)
    copies = []
    for name, path in MODULES.items():
        if name.startswith("raymer.config"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                target = getattr(item, "target", None)
                named = isinstance(target, ast.Name) and target.id in settings
                if isinstance(item, ast.AnnAssign) and item.value is not None and named:
                    copies.append((name, node.name, target.id))
    assert copies == []


DRILLS = "raymer.drills"
DRIVERS = {"raymer.pipeline.extract", "raymer.pipeline.recognize", "raymer.training.trainer"}


def _runtime_imports(path: Path) -> set[str]:
    """Modules imported outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _named(node.test) == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_fault_drills_live_behind_one_seam():
    """Only ``raymer.drills`` ends a process on purpose, and only the drivers import it
    (they hand the armed drill, or None, to their workers): stage and training code holds
    no drill of its own."""
    exits = [
        name
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "_exit"
    ]
    assert set(exits) == {DRILLS}
    importers = {n for n, p in MODULES.items() if DRILLS in _runtime_imports(p)}
    assert importers == DRIVERS


# The packages by layer, lowest first (README, Layout): a module imports only its own layer
# and the ones below; the packages of one tier (corpora, training, serving) not each other.
LAYERS = [
    {"plumbing"},
    {"config"},
    {"contract"},
    {"audio"},
    {"models"},
    {"trained"},
    {"inference"},
    {"pipeline"},
    {"corpora", "training", "serving"},
    {"cli"},
]
FRONT_DOORS = {"raymer.submission"}  # raymer submit: beside the CLI


def _layer(module: str) -> str:
    parts = module.split(".")
    packages = set().union(*LAYERS) - {"plumbing"}
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in packages):
        return parts[1]
    return "cli" if module in FRONT_DOORS else "plumbing"


def _rank(layer: str) -> int:
    return next(i for i, tier in enumerate(LAYERS) if layer in tier)


def test_packages_import_only_the_layers_below_them():
    assert _layer("raymer.audio.decode") == "audio" and _layer("raymer.storage") == "plumbing"
    upward = sorted(
        (name, dep)
        for name, deps in _graph().items()
        for dep in deps
        if _layer(dep) != _layer(name) and _rank(_layer(dep)) >= _rank(_layer(name))
    )
    assert upward == []


def test_model_code_is_pure_torch():
    """``raymer/models/`` holds torch modules, their builders and the Whisper and text
    encoders: no Ray, and nothing of the layers above (checkpoint files and batches are
    ``raymer.trained``), anywhere in its code."""
    found = {
        name: sorted(_third_party(path) & {"ray"})
        for name, path in MODULES.items()
        if name.startswith("raymer.models") and _third_party(path) & {"ray"}
    }
    assert found == {}
    above = {
        (name, dep)
        for name, deps in _graph().items()
        if name.startswith("raymer.models")
        for dep in deps
        if _rank(_layer(dep)) > _rank("models")
    }
    assert above == set()
