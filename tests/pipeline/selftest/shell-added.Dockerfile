# Broken on purpose for tests/pipeline/test_selftest_policy.py: a shell in the production
# image. Caught by the policy control programs-allow-listed.
ARG PYTHON_IMAGE=python:3.13-slim
ARG BASE_IMAGE=dashtam/production:latest
FROM ${PYTHON_IMAGE} AS shell-source
FROM ${BASE_IMAGE}
COPY --from=shell-source /usr/bin/dash /usr/bin/sh
