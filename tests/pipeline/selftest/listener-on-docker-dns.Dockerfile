# A listener hidden where Docker's embedded DNS listens: the app also serves TCP on
# 127.0.0.11:9999. The engine's own listeners there have no process of the container
# behind them; this one has, and the socket checks must see it.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
ENTRYPOINT ["python", "-c", "import os, subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import socket, time; s = socket.socket(); s.bind((\"127.0.0.11\", 9999)); s.listen(); time.sleep(1e9)']); os.execvp(sys.executable, [sys.executable, '-m', 'src.entrypoint', *sys.argv[1:]])"]
CMD ["app"]
