# Broken on purpose for tests/pipeline/test_selftest_policy.py: the image is configured to
# run as root. Caught by the policy control image-user-non-root (compose's `user:` still
# runs its processes as appuser), and by the build gate for a built stage.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
# hadolint ignore=DL3002
USER root
