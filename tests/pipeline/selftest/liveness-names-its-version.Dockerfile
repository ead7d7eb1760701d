# Broken on purpose for tests/pipeline/test_selftest.py: /health tells its version and
# environment in production too (the production branch taken out, its bytecode removed so
# the changed source is what runs). Caught by the check on production's liveness answer.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
USER root
RUN ["python", "-c", "import glob, os; p = '/app/src/main.py'; t = open(p).read(); open(p, 'w').write(t.replace('if settings.APP_ENV == \"production\":', 'if False:')); [os.remove(c) for c in glob.glob('/app/src/__pycache__/main.*.pyc')]"]
USER appuser
