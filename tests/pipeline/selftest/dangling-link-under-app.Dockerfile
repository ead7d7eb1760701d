# Broken on purpose for tests/pipeline/test_selftest.py: a link under /app that leads nowhere
# in the container's root. Caught by the check that every link under /app resolves there.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
USER root
RUN ["python", "-c", "import os; os.symlink('/opt/venv-that-is-not-here', '/app/.venv-elsewhere')"]
USER appuser
