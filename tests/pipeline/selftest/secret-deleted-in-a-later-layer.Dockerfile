# Broken on purpose for tests/pipeline/test_selftest.py: an env file and a private key are
# copied in and deleted in a later layer, so they are gone from the filesystem yet still in
# the image. Caught by tests/infra test_no_secret_in_any_layer. The test writes both files
# (throwaway values) into the build context. The image has no shell: Python deletes them.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
COPY --chown=appuser:appuser env/.env.dev /app/env/.env.dev
COPY --chown=appuser:appuser selftest-tls.key.pem /app/selftest-tls.key.pem
RUN ["python", "-c", "import os, shutil; shutil.rmtree('/app/env'); os.remove('/app/selftest-tls.key.pem')"]
