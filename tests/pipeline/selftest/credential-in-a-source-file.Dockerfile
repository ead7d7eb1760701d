# Broken on purpose for tests/pipeline/test_selftest.py: a source file of ours under /app that
# holds a live-looking AWS access key (AWS's own documented example; the test writes the file
# into the build context, so nothing here or in the image's history is shaped like one).
# Caught by the layer scan's look at our own files (test_no_secret_in_any_layer); the image's
# configuration and history hold nothing of it.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
COPY --chown=appuser:appuser local_settings.py /app/src/local_settings.py
