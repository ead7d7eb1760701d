#!/bin/sh
# Entrypoint of the registry stand-in: the upstream registry:3 image's command line, and the
# server run as the docker-registry user rather than root.
# usage: /entrypoint.sh [config.yml | serve | garbage-collect | help | -flag ...] [args...]
#   A config file alone means `registry serve <file>`; a registry subcommand or flag goes to
#   `registry`; anything else runs as given.
set -eu

case "${1:-}" in
  *.yaml | *.yml) set -- registry serve "$@" ;;
  serve | garbage-collect | help | -*) set -- registry "$@" ;;
esac

if [ "${1:-}" = registry ] && [ "$(id -u)" = 0 ]; then
  # A fresh named volume or a bind mount must belong to docker-registry before it writes there.
  find /var/lib/registry ! -user docker-registry -exec chown docker-registry:docker-registry '{}' +
  exec setpriv --reuid=docker-registry --regid=docker-registry --init-groups "$@"
fi

exec "$@"
