"""The Dashtam bench: build, size, boot, verify and runtime figures against the seed design
and goss.

A small program beside the `pipeline` library it measures, calling the library's functions.
Writes reports/bench.json (every raw sample) and reports/bench.md (medians with min and max,
the targets, project / baseline ratios, cached steps, sizes per stage and layer, and goss).
A missed target never fails the run: it is printed with the amount it is missed by.

    python -m bench [--repeat N] [--quick] [--only build,session,boot,runtime]
                    [--environment ci]

What it measures, and how:
- build: all five stages of docker/Dockerfile (and of the seed design, bench/Dockerfile.seed)
  with one bake of the images that run (development, production, callback; base and builder
  are built as their parts), as `nox -s build-all` builds them, from a private copy of the
  sources, tagged dashtam-bench/<stage> and dashtam-bench-baseline/<stage> so
  dashtam/<stage>:latest stays untouched. Per repetition: a cold build after
  `docker builder prune --all` (base images stay), a no-op rebuild, a rebuild after a
  one-line change under src/, and one after adding a small dependency and re-locking with uv.
- size: each stage's image, the production image's layers, and its Python base image.
- session: the whole commands users type (`nox -s "verify(ci)"`, `make verify`, and
  `make build`, `nox -s build-all`, `nox -s base-images` with nothing to do), warm.
- boot: each environment from `compose up` to healthy (and the seed design's ci stack),
  then tests/infra against it; on ci also goss (bind-mounted in by a compose override) with
  the checks both can express.
- runtime: the production image as it runs: a cold import of the app in a fresh read-only
  container (against the same image all precompiled, and the seed's), a restart of the ci
  app to healthy, the programs outside the allow-list, and the packages its dpkg inventory
  lists against those `dpkg -S` says own its files.

Modules: figures (what is reported, and the targets), parsers (BuildKit progress, Docker
timestamps, goss output, dpkg owners), record (one run's state), build, session, boot, peer
and runtime (the runners that fill the record), report (preflight, the sections,
bench.json), markdown (bench.md) and cli.
"""
