# Broken on purpose for tests/pipeline/test_selftest.py: the callback stores a code under any
# state, issued or not (the consume script's "the state must exist" taken out, its bytecode
# removed so the changed source is what runs). Caught by the check that sends a state no one
# issued and looks for the key it must not have left.
ARG BASE_IMAGE=dashtam/callback:latest
FROM ${BASE_IMAGE}
USER root
RUN ["python", "-c", "import glob, os; p = '/app/src/oauth_states.py'; t = open(p).read(); b = t.replace(\"if not provider then\\n  return 0\\nend\", \"if not provider then\\n  provider = 'any'\\nend\"); assert b != t; open(p, 'w').write(b); [os.remove(c) for c in glob.glob('/app/src/__pycache__/oauth_states.*.pyc')]"]
USER appuser
