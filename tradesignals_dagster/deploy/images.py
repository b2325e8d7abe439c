"""Pipeline images, built offline and tagged by content.

Two layers of images, both from recipes next to this module:

* the **runtime image** ``tradesignals-runtime:<tag>`` (``Dockerfile.runtime``): a Python 3.11 base
  plus a virtualenv holding the project and its dependencies, installed with ``--no-index`` from
  a wheelhouse made on the host (:func:`wheelhouse`), so a build needs no network;
* one **pipeline image** per pipeline, ``<repository>:<tag>`` (``pipelines/<id>/Dockerfile``, or
  ``Dockerfile.pipeline`` when the pipeline has none): the runtime image plus the pipeline's code
  (its directory without ``config.yaml``; configuration is mounted read-only when it runs).

Tags are digests of everything that goes in (recipe, base image reference, dependency lock,
project source, pipeline code), computed without the Docker engine, so the desired state knows
the image a pipeline should run before anything is built, an unchanged pipeline is never rebuilt,
and a changed one gets a new tag (and so a new desired version).

The base image is ``settings.base_image``: the default ``tradesignals-base:bookworm`` is made
locally with ``debootstrap`` + ``docker import`` when missing (:func:`ensure_base_image`); any
other reference is pulled when missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradesignals_dagster.deploy.errors import ImageBuildError
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings

Progress = Callable[[str], None]
HERE = Path(__file__).resolve().parent
DEPS_RECIPE = HERE / "Dockerfile.deps"
RUNTIME_RECIPE = HERE / "Dockerfile.runtime"
PIPELINE_RECIPE = HERE / "Dockerfile.pipeline"
RUNTIME_REPOSITORY = "tradesignals-runtime"
DEPS_REPOSITORY = "tradesignals-deps"
DEFAULT_BASE_IMAGE = "tradesignals-base:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
_SKIP_PARTS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
LABEL_PREFIX = "io.tradesignals"


def _quiet(_: str) -> None:
    """The default progress sink: say nothing."""


def cache_root() -> Path:
    """``$TRADESIGNALS_KAFKA_CACHE`` or ``~/.cache/tradesignals``: the cache the stack shares."""
    root = os.environ.get("TRADESIGNALS_KAFKA_CACHE") or str(Path.home() / ".cache" / "tradesignals")
    return Path(root).expanduser()


def project_root(settings: Settings | None = None) -> Path:
    """The project's source tree images are built from: ``settings.image_source``, else the
    checkout this package is installed from (pyproject.toml beside the package)."""
    root = (settings.image_source if settings is not None else None) or HERE.parent.parent
    if not (root / "pyproject.toml").is_file():
        raise ImageBuildError(
            f"images are built from the project's source, but {root} has no pyproject.toml "
            "(install the project from a checkout: pip install -e .)"
        )
    return root


def _files(folder: Path, exclude: Iterable[str] = ()) -> list[Path]:
    """Files under ``folder``, sorted, without caches and the names in ``exclude``."""
    skip = set(exclude)
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not (_SKIP_PARTS & set(p.parts)) and p.suffix != ".pyc" and p.name not in skip
    )


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def dependency_lock(root: Path) -> tuple[list[str], str]:
    """The project's dependency specifiers and a hash of them and the Python tag (the lock inputs)."""
    data = tomllib.loads((root / "pyproject.toml").read_text())
    deps = sorted(data.get("project", {}).get("dependencies", []))
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}-{sys.platform}"
    return deps, _digest([tag.encode(), *(d.encode() for d in deps)])


def source_digest(root: Path) -> str:
    """Hash of what the project wheel is built from: pyproject.toml, README.md and the package."""
    files = [root / "pyproject.toml", root / "README.md", *_files(root / "tradesignals_dagster")]
    return _digest(
        b for f in files if f.is_file() for b in (str(f.relative_to(root)).encode(), f.read_bytes())
    )


def deps_image_ref(base_image: str, root: Path) -> str:
    """``tradesignals-deps:<tag>`` for this recipe, base image and dependency lock."""
    _, lock = dependency_lock(root)
    return f"{DEPS_REPOSITORY}:{_digest([DEPS_RECIPE.read_bytes(), base_image.encode(), lock.encode()])[:16]}"


def runtime_image_ref(base_image: str, root: Path | None = None) -> str:
    """``tradesignals-runtime:<tag>`` for this recipe, the dependency image and the source
    (``root``; default the checkout this package is installed from)."""
    root = root or project_root()
    parts = [
        RUNTIME_RECIPE.read_bytes(),
        deps_image_ref(base_image, root).encode(),
        source_digest(root).encode(),
    ]
    return f"{RUNTIME_REPOSITORY}:{_digest(parts)[:16]}"


def pipeline_recipe(pipelines_dir: Path, key: str) -> Path:
    """The pipeline's own Dockerfile, else the shared thin recipe."""
    own = pipelines_dir / key / "Dockerfile"
    return own if own.is_file() else PIPELINE_RECIPE


def repository(app: StreamingApplication, key: str) -> str:
    """The image repository of pipeline ``key``: the registry's ``docker.image`` less its tag."""
    docker = app.pipelines[key].docker
    if docker is None:
        return f"tradesignals/{key.lower()}"
    name = docker.image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def pipeline_image_ref(app: StreamingApplication, key: str, settings: Settings) -> str:
    """``<repository>:<tag>``, the tag a digest of the runtime image and the pipeline's code."""
    folder = settings.pipelines_dir / key
    parts = [
        runtime_image_ref(settings.base_image, project_root(settings)).encode(),
        pipeline_recipe(settings.pipelines_dir, key).read_bytes(),
    ]
    if folder.is_dir():
        for f in _files(folder, exclude=("config.yaml",)):
            parts += [str(f.relative_to(folder)).encode(), f.read_bytes()]
    return f"{repository(app, key)}:{_digest(parts)[:16]}"


@contextmanager
def _scratch(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _run(argv: list[str], what: str, progress: Progress, cwd: Path | None = None) -> None:
    """Run a build step, streaming its output to ``progress``; its last lines name a failure."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        progress(line.rstrip())
        tail = [*tail[-19:], line.rstrip()]
    if proc.wait() != 0:
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}); last lines:\n" + "\n".join(tail))


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check"]


def dependency_wheels(root: Path, cache: Path, progress: Progress = _quiet) -> Path:
    """Wheels of the dependencies, cached by the lock hash: made with the host's pip, the only
    step that reads a package index (an image build never does)."""
    deps, lock = dependency_lock(root)
    deps_dir = cache / "wheelhouse" / f"deps-{lock[:16]}"
    pip = _pip()
    if not (deps_dir / "requirements.txt").is_file():
        progress(f"making the dependency wheelhouse {deps_dir} (pip wheel; once per dependency change)")
        with _scratch("ts-wheels-") as tmp:
            out = tmp / "wheels"
            _run([*pip, "wheel", "-w", str(out), "setuptools>=68", "wheel", *deps], "pip wheel", progress)
            (out / "requirements.txt").write_text("\n".join(deps) + "\n")
            deps_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(deps_dir, ignore_errors=True)
            shutil.move(str(out), deps_dir)
    return deps_dir


def project_wheel(root: Path, cache: Path, progress: Progress = _quiet) -> Path:
    """The project's wheel, cached by the source hash; built with ``--no-index`` (setuptools from
    the dependency wheelhouse) from a copy of the source, so the checkout is not touched."""
    deps_dir = dependency_wheels(root, cache, progress)
    pip = _pip()
    project_dir = cache / "wheelhouse" / f"project-{source_digest(root)[:16]}"
    if not any(project_dir.glob("*.whl")):
        progress(f"building the project wheel {project_dir}")
        with _scratch("ts-src-") as tmp:
            src = tmp / "src"
            src.mkdir()
            for name in ("pyproject.toml", "README.md"):
                if (root / name).is_file():
                    shutil.copy2(root / name, src / name)
            shutil.copytree(
                root / "tradesignals_dagster",
                src / "tradesignals_dagster",
                ignore=shutil.ignore_patterns(*_SKIP_PARTS, "*.pyc"),
            )
            out = tmp / "out"
            argv = [
                *pip,
                "wheel",
                "--no-deps",
                "--no-index",
                "--find-links",
                str(deps_dir),
                "-w",
                str(out),
                str(src),
            ]
            _run(argv, "building the project wheel", progress)
            project_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(project_dir, ignore_errors=True)
            shutil.move(str(out), project_dir)
    return project_dir


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy, across file systems) ``src``'s files into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file():
            try:
                os.link(f, dst / f.name)
            except OSError:
                shutil.copy2(f, dst / f.name)


@dataclass(frozen=True)
class BuildResult:
    """One image: its reference, whether this call built it, and how long that took."""

    ref: str
    built: bool
    seconds: float
    image_id: str = ""


def image_exists(client: Any, ref: str) -> str | None:
    """The id of image ``ref`` in the engine, or None."""
    import docker.errors

    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"cannot inspect image {ref}: {exc.explanation or exc}") from exc


def docker_build(
    client: Any, context: Path, dockerfile: str, tag: str, args: dict[str, str], progress: Progress
) -> str:
    """``docker build`` through the Engine API (no network in RUN steps); the image id."""
    import docker.errors

    tail: list[str] = []
    try:
        stream = client.api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=args,
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="none",
            decode=True,
            labels={f"{LABEL_PREFIX}.built-by": "tradesignals images build"},
        )
        for chunk in stream:
            if "error" in chunk:
                tail.append(str(chunk["error"]).rstrip())
                raise ImageBuildError(f"docker build of {tag} failed:\n" + "\n".join(tail[-20:]))
            text = str(chunk.get("stream", "")).rstrip()
            if text:
                progress(text)
                tail = [*tail[-19:], text]
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"docker build of {tag} failed: {exc.explanation or exc}") from exc
    found = image_exists(client, tag)
    if found is None:
        raise ImageBuildError(
            f"docker build of {tag} reported no error but left no image:\n" + "\n".join(tail)
        )
    return found


def ensure_base_image(client: Any, ref: str, cache: Path, progress: Progress = _quiet) -> str:
    """The base image's id, making the default one with debootstrap (or pulling another) first."""
    found = image_exists(client, ref)
    if found:
        return found
    if ref != DEFAULT_BASE_IMAGE:
        import docker.errors

        progress(f"pulling the base image {ref}")
        try:
            client.images.pull(ref)
        except docker.errors.APIError as exc:
            raise ImageBuildError(
                f"base image {ref} is not in the engine and cannot be pulled ({exc.explanation or exc}); "
                f"load it (docker load/import) or unset TRADESIGNALS_BASE_IMAGE to use the locally "
                f"made {DEFAULT_BASE_IMAGE}"
            ) from exc
        return image_exists(client, ref) or ref
    return _debootstrap_base(client, ref, cache, progress)


def _debootstrap_base(client: Any, ref: str, cache: Path, progress: Progress) -> str:
    """Make ``ref`` from a Debian bookworm rootfs (cached as a tarball) with ``docker import``."""
    tarball = cache / "base" / "bookworm-python3.tar"
    if not tarball.is_file():
        if shutil.which("debootstrap") is None:
            raise ImageBuildError(
                f"base image {ref} is missing and debootstrap is not installed to make it "
                "(apt-get install -y debootstrap), or set TRADESIGNALS_BASE_IMAGE to a Python 3.11 image"
            )
        started = time.monotonic()
        progress(f"making the base image {ref} with debootstrap (once; about a minute)")
        with _scratch("ts-rootfs-") as tmp:
            rootfs = tmp / "rootfs"
            argv = [
                "debootstrap",
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ]
            _run(argv, "debootstrap", progress)
            tarball.parent.mkdir(parents=True, exist_ok=True)
            part = tarball.with_suffix(".part")
            _run(["tar", "-C", str(rootfs), "-cf", str(part), "."], "packing the base rootfs", progress)
            part.replace(tarball)
        progress(f"base rootfs ready in {time.monotonic() - started:.0f}s: {tarball}")
    repo, _, tag = ref.partition(":")
    progress(f"importing {tarball} as {ref}")
    client.api.import_image_from_file(str(tarball), repository=repo, tag=tag or "latest")
    found = image_exists(client, ref)
    if found is None:
        raise ImageBuildError(f"docker import of {tarball} did not produce {ref}")
    return found


def build_deps_image(client: Any, settings: Settings, progress: Progress = _quiet) -> BuildResult:
    """The dependency image, built (base, wheelhouse, ``docker build``) only when missing."""
    root = project_root(settings)
    ref = deps_image_ref(settings.base_image, root)
    found = image_exists(client, ref)
    if found:
        return BuildResult(ref, False, 0.0, found)
    started = time.monotonic()
    ensure_base_image(client, settings.base_image, cache_root(), progress)
    deps_dir = dependency_wheels(root, cache_root(), progress)
    progress(f"building {ref} from {settings.base_image}")
    with _scratch("ts-deps-ctx-") as ctx:
        _link_tree(deps_dir, ctx / "wheels" / "deps")
        shutil.copy2(DEPS_RECIPE, ctx / "Dockerfile")
        image_id = docker_build(client, ctx, "Dockerfile", ref, {"BASE_IMAGE": settings.base_image}, progress)
    return BuildResult(ref, True, round(time.monotonic() - started, 3), image_id)


def build_runtime_image(client: Any, settings: Settings, progress: Progress = _quiet) -> BuildResult:
    """The shared runtime image (dependency image + the project wheel), built only when missing."""
    root = project_root(settings)
    ref = runtime_image_ref(settings.base_image, root)
    found = image_exists(client, ref)
    if found:
        return BuildResult(ref, False, 0.0, found)
    started = time.monotonic()
    deps = build_deps_image(client, settings, progress)
    project_dir = project_wheel(root, cache_root(), progress)
    progress(f"building {ref} from {deps.ref}")
    with _scratch("ts-runtime-ctx-") as ctx:
        _link_tree(project_dir, ctx / "wheels" / "project")
        shutil.copy2(RUNTIME_RECIPE, ctx / "Dockerfile")
        image_id = docker_build(client, ctx, "Dockerfile", ref, {"DEPS_IMAGE": deps.ref}, progress)
    return BuildResult(ref, True, round(time.monotonic() - started, 3), image_id)


def build_pipeline_image(
    client: Any, app: StreamingApplication, key: str, settings: Settings, progress: Progress = _quiet
) -> BuildResult:
    """Pipeline ``key``'s image (and the runtime image under it), built only when missing."""
    ref = pipeline_image_ref(app, key, settings)
    found = image_exists(client, ref)
    if found:
        return BuildResult(ref, False, 0.0, found)
    started = time.monotonic()
    runtime = build_runtime_image(client, settings, progress)
    folder = settings.pipelines_dir / key
    if not folder.is_dir():
        raise ImageBuildError(f"pipeline '{key}': no directory {folder} to build its image from")
    recipe = pipeline_recipe(settings.pipelines_dir, key)
    progress(f"building {ref} ({recipe})")
    with _scratch("ts-pipeline-ctx-") as ctx:
        for f in _files(folder, exclude=("config.yaml",)):
            target = ctx / f.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
        shutil.copy2(recipe, ctx / ".tradesignals.Dockerfile")
        image_id = docker_build(
            client,
            ctx,
            ".tradesignals.Dockerfile",
            ref,
            {"RUNTIME_IMAGE": runtime.ref, "PIPELINE_ID": key},
            progress,
        )
    return BuildResult(ref, True, round(time.monotonic() - started, 3), image_id)
