"""The runtime section: the production image as it runs, read and started from outside.

- cold import: `docker run --rm --read-only --entrypoint python <image> -c "import …"`, the
  whole `docker run` timed, for the project's production image, the same image with
  everything precompiled (built here: compileall over its standard library and /app, as
  root, in exec form since the image has no shell) and the seed baseline's production image.
  Each image runs once untimed first, so none pays for the first read of its layers; the
  order rotates per repetition.
- start to healthy: a ci stack booted once; per repetition its app container is stopped and
  started again (`docker start`), timed to the end of its first passing healthcheck probe
  (Docker's health log), its dependencies healthy all along.
- contents: the production image's files, exported (`docker create` + `docker export`;
  nothing runs in it): the programs outside the policy's allow-list, and the packages its
  dpkg inventory (/var/lib/dpkg/status.d) lists against the packages that own its files,
  which `dpkg -S` answers in a container of its Python base image (the oracle).
"""

from __future__ import annotations

import posixpath
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import boot
from bench.parsers import dpkg_owners, first_healthy_probe
from bench.record import BASELINE, PROJECT, BenchRun
from pipeline import engine
from pipeline import stack as stacks
from pipeline.docker_client import container_output, docker, engine_json, translated
from pipeline.environments import ENVIRONMENTS, image_name
from pipeline.errors import PipelineError
from pipeline.image_sources import image_references
from pipeline.policy import load_policy
from pipeline.process import last_line, run, say

IMPORT_STATEMENT = "import src.main, src.entrypoint, alembic.command"
COLD_IMPORT_VARIANTS = ("project", "precompiled", "baseline")
PRECOMPILED_REPOSITORY = f"{PROJECT.namespace}/production-precompiled"
STDLIB_QUESTION = "import sysconfig; print(sysconfig.get_paths()['stdlib'])"
# The environment and service the restart is timed on.
RESTART_ENVIRONMENT = "ci"
RESTARTED_SERVICE = "app"
HEALTHY_TIMEOUT_SECONDS = 90
PROGRAMS_CONTROL = "programs-allow-listed"
# Folders whose programs count as the image's binaries (shells, coreutils, package managers).
PROGRAM_FOLDERS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
INVENTORY_FOLDER = "/var/lib/dpkg/status.d"
# Debian's merged /usr: a package may list a file under either name.
MERGED_USR_FOLDERS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Where the oracle's container reads the paths it is asked about.
QUESTIONS_IN_CONTAINER = "/dashtam-bench/paths"
# xargs: 123 when an invocation exited 1-125; `dpkg -S` exits 1 when a path has no owner.
DPKG_SEARCH_EXIT_CODES = (0, 123)


# ---------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class ImageEntry:
    """One entry of an exported image: its absolute path, kind and (for links) target."""

    path: str
    kind: str  # "dir", "symlink" or "file" (regular files and hard links)
    link: str = ""


def image_entries(members: Iterable[tarfile.TarInfo]) -> list[ImageEntry]:
    """`docker export`'s tar members as absolute paths inside the image."""
    entries = []
    for member in members:
        path = "/" + member.name.strip("/").removeprefix("./")
        if path == "/":
            continue
        kind = "dir" if member.isdir() else "symlink" if member.issym() else "file"
        entries.append(ImageEntry(path, kind, member.linkname if member.issym() else ""))
    return entries


def programs_outside(entries: Sequence[ImageEntry], allowed: Iterable[str]) -> list[str]:
    """What lies in the program folders (files or links) and is not an allowed name."""
    allowed = set(allowed)
    return sorted(
        entry.path
        for entry in entries
        if entry.kind != "dir"
        and posixpath.dirname(entry.path) in PROGRAM_FOLDERS
        and posixpath.basename(entry.path) not in allowed
    )


def inventory_packages(entries: Sequence[ImageEntry]) -> set[str]:
    """The packages the image's dpkg inventory lists: one status file per package."""
    return {
        posixpath.basename(entry.path)
        for entry in entries
        if entry.kind != "dir" and posixpath.dirname(entry.path) == INVENTORY_FOLDER
    }


def merged_usr_aliases(path: str) -> list[str]:
    """The path and its other name under merged /usr (/lib/x <-> /usr/lib/x)."""
    for folder in MERGED_USR_FOLDERS:
        if path.startswith(folder + "/"):
            return [path, "/usr" + path]
        if path.startswith("/usr" + folder + "/"):
            return [path, path.removeprefix("/usr")]
    return [path]


def owner_questions(entries: Sequence[ImageEntry]) -> list[str]:
    """The paths to ask `dpkg -S` about: every file and link of the image (with its merged
    /usr alias), except folders, links to folders (the merged-/usr links themselves) and
    the inventory, which describes packages rather than belonging to one."""
    folders = {entry.path for entry in entries if entry.kind == "dir"}
    questions: dict[str, None] = {}
    for entry in entries:
        if entry.kind == "dir" or entry.path.startswith(INVENTORY_FOLDER + "/"):
            continue
        if entry.kind == "symlink":
            target = posixpath.join(posixpath.dirname(entry.path), entry.link)
            if posixpath.normpath(target) in folders:
                continue
        questions |= dict.fromkeys(merged_usr_aliases(entry.path))
    return list(questions)


def precompiled_dockerfile(base: str, stdlib: str, user: str) -> str:
    """The production image with every module of its standard library and /app compiled."""
    return (
        f"FROM {base}\n"
        "USER root\n"
        f'RUN ["python", "-m", "compileall", "-q", "-j", "0", "{stdlib}", "/app"]\n'
        f"USER {user}\n"
    )


def rotated(items: Sequence[str], repetition: int) -> list[str]:
    """`items` starting at a different one each repetition, so none always goes first."""
    shift = repetition % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


# ---------------------------------------------------------------- the section


def run_runtime(bench_run: BenchRun) -> None:
    """The runtime section: each part on its own, so one that cannot run spares the others."""
    parts: tuple[tuple[str, Callable[[BenchRun], None]], ...] = (
        ("cold import", time_cold_imports),
        ("contents", read_image_contents),
        ("start to healthy", time_restarts),
    )
    for name, part in parts:
        try:
            part(bench_run)
        except (PipelineError, subprocess.SubprocessError, OSError) as error:
            bench_run.errors[f"runtime {name}"] = str(error)
            say(f"runtime {name}: not measured: {error}", speaker="bench")


def project_production_image(bench_run: BenchRun) -> str:
    """This run's production image when the build section made one, else dashtam/production."""
    built = f"{PROJECT.namespace}/production:noop"
    if engine.image_exists(built):
        return built
    fallback = f"{image_name('production')}:latest"
    if not engine.image_exists(fallback):
        raise PipelineError(
            f"neither {built} nor {fallback} exists; build it (`nox -s build-all`) or run the "
            "bench with its build section."
        )
    note = f"runtime used {fallback}: {built} not built in this run."
    if note not in bench_run.notes:
        bench_run.notes.append(note)
    return fallback


def image_answer(image: str, code: str) -> str:
    """What `python -c code` prints in a throwaway container of the image."""
    with translated(f"python in {image}"):
        return container_output(image, ["-c", code], entrypoint="python").strip()


def build_precompiled(bench_run: BenchRun, production: str) -> tuple[str, str]:
    """The production image with everything precompiled, tagged in the bench's namespace
    (removed when the run ends): (its tag, the standard library folder it compiled)."""
    stdlib = image_answer(production, STDLIB_QUESTION)
    user = engine.image_details(production)["Config"].get("User") or "root"
    folder = Path(bench_run.scratch.name) / "precompiled"
    folder.mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text(precompiled_dockerfile(production, stdlib, user))
    tag = f"{PRECOMPILED_REPOSITORY}:bench-{bench_run.run_id}"
    bench_run.temporary_tags.append(tag)
    with translated(f"building {tag} (compileall in {production})"):
        docker().buildx.build(folder, load=True, tags=[tag], progress=False)
    return tag, stdlib


def time_cold_import(image: str) -> float:
    """Seconds of one whole `docker run --rm --read-only` that imports the app."""
    # Plain `docker run`: the figure is that command's wall time, nothing of ours around it.
    command = ["docker", "run", "--rm", "--read-only", "--entrypoint", "python", image]
    started = time.monotonic()
    result = run([*command, "-c", IMPORT_STATEMENT], timeout=300)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise PipelineError(
            f"importing the app in {image} failed ({last_line(result.stderr)}); "
            "the cold-import figure needs an image that imports."
        )
    return seconds


def cold_import_images(bench_run: BenchRun) -> dict[str, str]:
    """Variant -> image: the project's, it precompiled, and the seed baseline's when built."""
    project = project_production_image(bench_run)
    precompiled, stdlib = build_precompiled(bench_run, project)
    images = {"project": project, "precompiled": precompiled}
    baseline = f"{BASELINE.namespace}/production:noop"
    if engine.image_exists(baseline):
        images["baseline"] = baseline
    else:
        bench_run.errors["runtime cold import baseline"] = (
            f"{baseline} not built; run the bench with its build section."
        )
    bench_run.runtime["cold_import"] = {
        "images": images,
        "stdlib": stdlib,
        "statement": IMPORT_STATEMENT,
    }
    return images


def time_cold_imports(bench_run: BenchRun) -> None:
    images = cold_import_images(bench_run)
    for image in images.values():
        time_cold_import(image)  # warm-up: the first read of the image's layers, not timed
    for repetition in range(bench_run.repeat):
        for variant in rotated(list(images), repetition):
            seconds = time_cold_import(images[variant])
            bench_run.add(f"runtime.cold_import.{variant}.seconds", seconds)
            say(
                f"cold import, {variant}: {seconds:.2f} s (repetition {repetition + 1})",
                speaker="bench",
            )


def exported_entries(image: str) -> list[ImageEntry]:
    """The image's files, from `docker export` of a container created (never started)."""
    with (
        engine.exported_filesystem(image, name_prefix="dashtam-bench") as archive,
        tarfile.open(archive) as listing,
    ):
        return image_entries(listing.getmembers())


def dpkg_owning_packages(bench_run: BenchRun, python_base: str, paths: list[str]) -> set[str]:
    """The packages `dpkg -S` names for `paths`, asked in a container of the Python base."""
    questions = Path(bench_run.scratch.name) / "dpkg-questions.txt"
    questions.write_text("".join(f"{path}\n" for path in paths))
    questions.chmod(0o644)
    mount = f"type=bind,source={questions},target={QUESTIONS_IN_CONTAINER},readonly"
    # Plain `docker run`: xargs exits 123 when `dpkg -S` finds a path without an owner, an
    # answer here, which python-on-whales would raise as a failure (its output lost).
    result = run(
        [
            *("docker", "run", "--rm", "--network", "none", "--mount", mount, python_base),
            *("xargs", "--no-run-if-empty", "--delimiter", "\\n", "--arg-file"),
            *(QUESTIONS_IN_CONTAINER, "dpkg", "-S"),
        ],
        timeout=300,
    )
    if result.returncode not in DPKG_SEARCH_EXIT_CODES or not result.stdout:
        raise PipelineError(
            f"`dpkg -S` in {python_base} failed ({last_line(result.stderr)}); the oracle "
            "needs the Python base image's dpkg database."
        )
    return dpkg_owners(result.stdout)


def read_image_contents(bench_run: BenchRun) -> None:
    image = project_production_image(bench_run)
    python_base = image_references(bench_run.source)["PYTHON_IMAGE"]
    allowed = load_policy().control(PROGRAMS_CONTROL).parameters["allowed"]
    for repetition in range(bench_run.repeat):
        entries = exported_entries(image)
        programs = programs_outside(entries, allowed)
        inventory = inventory_packages(entries)
        owning = dpkg_owning_packages(bench_run, python_base, owner_questions(entries))
        bench_run.add("runtime.programs_outside_allow_list.count", len(programs))
        bench_run.add("runtime.packages.inventory.count", len(inventory))
        bench_run.add("runtime.packages.owning.count", len(owning))
        say(
            f"{image}: {len(programs)} program(s) outside the allow-list, {len(inventory)} "
            f"package(s) listed, {len(owning)} owning its files (repetition {repetition + 1})",
            speaker="bench",
        )
    bench_run.runtime["contents"] = {
        "image": image,
        "python_base": python_base,
        "files": sum(entry.kind != "dir" for entry in entries),
        "allowed_programs": sorted(allowed),
        "programs_outside_allow_list": programs,
        "listed_not_owning": sorted(inventory - owning),
        "owning_not_listed": sorted(owning - inventory),
    }


def container_state(container: str) -> dict:
    """`docker inspect`'s State of a container ({} when it cannot be read)."""
    try:
        return engine_json("container", [container])[0]["State"]
    except PipelineError:
        return {}


def restart_to_healthy(container: str) -> float:
    """Stop the container, start it again: seconds from `docker start` to the end of its
    first passing healthcheck probe after that."""
    with translated(f"stopping {container}"):
        docker().container.stop(container)
    started = time.time()
    with translated(f"starting {container} again"):
        docker().container.start(container)
    deadline = time.monotonic() + HEALTHY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        state = container_state(container)
        health = state.get("Health") or {}
        probe = first_healthy_probe(health.get("Log") or [], after=started)
        if health.get("Status") == "healthy" and probe:
            return probe[1] - started
        if state and not state.get("Running"):
            raise PipelineError(f"{container} stopped after its restart ({state.get('Status')}).")
        time.sleep(boot.POLL_SECONDS)
    raise PipelineError(f"{container} not healthy {HEALTHY_TIMEOUT_SECONDS} s after its restart.")


def time_restarts(bench_run: BenchRun) -> None:
    """A ci stack booted once; its app stopped and started again once per repetition."""
    environment = ENVIRONMENTS[RESTART_ENVIRONMENT]
    tag = boot.stack_tag(bench_run, PROJECT, environment.stages)
    seconds_list = []
    with boot.images_tagged(tag):
        stack = stacks.verify_stack(environment, run_id=f"bench{bench_run.run_id}rt")
        try:
            stack.check_host_ports_free()
            stack.up()
            container = stack.container_id(RESTARTED_SERVICE)
            for repetition in range(bench_run.repeat):
                seconds = restart_to_healthy(container)
                seconds_list.append(round(seconds, 3))
                bench_run.add("runtime.start_to_healthy_seconds", seconds)
                say(
                    f"{RESTART_ENVIRONMENT} {RESTARTED_SERVICE}: start to healthy "
                    f"{seconds:.2f} s (repetition {repetition + 1})",
                    speaker="bench",
                )
        finally:
            stack.down(remove_volumes=True)
    bench_run.runtime["start_to_healthy"] = {
        "environment": RESTART_ENVIRONMENT,
        "service": RESTARTED_SERVICE,
        "image_tag": tag or "latest",
        "seconds": seconds_list,
    }
