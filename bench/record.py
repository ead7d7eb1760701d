"""One bench run's state: what it was asked to do, and everything it measured so far.

A plain record: the runners (bench.build, bench.session, bench.boot, bench.peer,
bench.runtime) fill it, bench.report turns it into reports/bench.json.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Variant:
    """A design the bench builds and boots: the project's, or the seed baseline it improves on."""

    name: str  # project | baseline
    dockerfile: str  # relative to the build context
    namespace: str  # the bench's own image names, so dashtam/<stage>:latest stays untouched


PROJECT = Variant("project", "docker/Dockerfile", "dashtam-bench")
BASELINE = Variant("baseline", "bench/Dockerfile.seed", "dashtam-bench-baseline")
VARIANTS = (PROJECT, BASELINE)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class BenchRun:
    source: str  # the image source (pipeline.image_sources)
    repeat: int
    quick: bool
    sections: tuple[str, ...]
    environments: tuple[str, ...]
    # Names this run's stacks, tags and source changes apart from every other run's.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    samples: dict[str, list[float]] = field(default_factory=dict)
    builds: list[dict] = field(default_factory=list)
    boots: list[dict] = field(default_factory=list)
    suites: list[dict] = field(default_factory=list)
    goss: list[dict] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    # What the runtime section read besides its figures: images, programs, packages.
    runtime: dict[str, dict] = field(default_factory=dict)
    dependency_changes: list[dict] = field(default_factory=list)
    sizes: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    engine_version: str = ""
    goss_version: str = ""
    started_at: str = field(default_factory=_now)
    # dashtam/<stage>:bench-… tags the boot section made; removed when the run ends.
    temporary_tags: list[str] = field(default_factory=list)
    goss_binary: Path | None = None
    scratch: tempfile.TemporaryDirectory = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="dashtam-bench-")
    )

    def add(self, key: str, value: float) -> None:
        """One more sample of a figure."""
        self.samples.setdefault(key, []).append(value)
