# Broken on purpose for tests/pipeline/test_selftest.py: the loader cache is deleted and
# libpython is found through LD_LIBRARY_PATH instead, a layout the official images never
# have (the app still boots). Caught by tests/infra test_app_runs_the_official_python_layout.
# The image has no shell: Python deletes the cache.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
ENV LD_LIBRARY_PATH=/usr/local/lib
USER root
RUN ["python", "-c", "import os; os.remove('/etc/ld.so.cache')"]
USER appuser
