# Broken on purpose for tests/pipeline/test_selftest.py: the production image runs as root.
# Caught by tests/infra test_pid1_runs_as_appuser (and by the build gate, for a built stage).
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
# hadolint ignore=DL3002
USER root
