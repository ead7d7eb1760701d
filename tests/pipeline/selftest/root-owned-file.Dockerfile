# Broken on purpose for tests/pipeline/test_selftest.py: one file under /app belongs to root.
# Caught by tests/infra test_everything_under_app_is_owned_by_appuser.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
USER root
RUN touch /app/src/selftest_owned_by_root.py
USER appuser
