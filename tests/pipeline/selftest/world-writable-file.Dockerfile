# Broken on purpose for tests/pipeline/test_selftest_policy.py: a world-writable file
# outside /app and outside any sticky folder. Caught by the policy control
# no-world-writable-files.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
USER root
RUN ["python", "-c", "import os; os.makedirs('/opt', exist_ok=True); open('/opt/selftest-world-writable', 'w').close(); os.chmod('/opt/selftest-world-writable', 0o666)"]
USER appuser
