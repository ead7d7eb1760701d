# Broken on purpose for tests/pipeline/test_selftest.py: the interpreter PID 1 runs is setuid
# root. Caught by the check on the running interpreter's owner and mode.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
USER root
RUN ["python", "-c", "import os, sys; os.chmod(os.path.realpath(sys.executable), 0o4755)"]
USER appuser
