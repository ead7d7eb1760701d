# Broken on purpose for tests/pipeline/test_selftest_policy.py: one file under /app belongs
# to root. Caught by the policy control app-files-owned-by-appuser, and by no other.
ARG BASE_IMAGE=dashtam/callback:latest
FROM ${BASE_IMAGE}
USER root
RUN ["python", "-c", "open('/app/src/selftest_owned_by_root.py', 'w').close()"]
USER appuser
