#!/usr/bin/env bash
# Install and start a Docker Engine (>= 26) with Compose v2 and Buildx from the
# distribution's own signed packages, so the pipeline runs on a bare Debian/Ubuntu box.
# Every package comes through apt, which checks the archive's signature (InRelease, against
# debian-archive-keyring) and each package's checksum; a mismatch stops the install.
# Idempotent: when an engine >= 26 already answers it only prints the versions.
set -euo pipefail

readonly USAGE="usage: scripts/install-docker.sh [--with-mmdebstrap] [--help]   (env: DOCKERD_LOG=/var/log/dockerd.log DOCKERD_TIMEOUT=60)"
readonly MIN_ENGINE_MAJOR=26
readonly NEWER_SUITE=trixie # Debian 13: the first Debian release whose docker.io is >= 26
readonly DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
readonly DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-60}
# On Debian 12 the engine comes from Debian 13: an apt source for it, pinned so that only
# these packages are taken from there (their dependencies stay the host release's).
readonly ENGINE_PACKAGES=(docker.io docker-cli docker-compose docker-buildx)
readonly NEWER_SOURCE=/etc/apt/sources.list.d/dashtam-docker-$NEWER_SUITE.sources
readonly NEWER_PINNING=/etc/apt/preferences.d/dashtam-docker-$NEWER_SUITE
readonly ARCHIVE_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

die() { echo "install-docker: $*" >&2; exit 1; }

# The server's version, or nothing when no engine answers. `docker version`, not `docker
# info`: this runs before every `make verify`, and `info` also asks every CLI plugin.
server_version() { docker version --format '{{.Server.Version}}' 2>/dev/null || true; }

engine_answers() { [ -n "$(server_version)" ]; }

# The same words the pipeline's preflight uses for an engine it refuses.
refuse_old_engine() {
  die "Docker Engine $1 is too old (need >= $MIN_ENGINE_MAJOR); upgrade it (https://docs.docker.com/engine/install/), then rerun."
}

# Refuses an engine older than MIN_ENGINE_MAJOR (the version given, or asked), then prints
# what answers.
require_current_engine() {
  local version=${1:-$(server_version)}
  [ "${version%%.*}" -ge "$MIN_ENGINE_MAJOR" ] 2>/dev/null || refuse_old_engine "$version"
  echo "engine:  $version"
  echo "compose: $(docker compose version --short)"
  echo "buildx:  $(docker buildx version | awk '{print $2}')"
}

installed_engine_major() {
  command -v dockerd >/dev/null 2>&1 || { echo 0; return; }
  dockerd --version | sed -E 's/^Docker version ([0-9]+).*/\1/'
}

start_engine() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl start docker
  else
    # No init system manages services here (containers, CI sandboxes): run it ourselves.
    echo "starting dockerd (log: $DOCKERD_LOG)"
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
  fi
  local waited=0
  until engine_answers; do
    if [ "$waited" -ge "$DOCKERD_TIMEOUT" ]; then
      die "dockerd did not answer within ${DOCKERD_TIMEOUT}s; read $DOCKERD_LOG for the reason, then rerun."
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

# The Debian mirror the host's apt sources already name for its own release.
configured_debian_mirror() {
  local codename=$1
  # shellcheck disable=SC2016 # $(REPO_URI) and friends are apt's placeholders, not shell
  apt-get indextargets --format '$(REPO_URI) $(CODENAME) $(IDENTIFIER)' \
    | awk -v c="$codename" '$2 == c && $3 == "Packages" {print $1; exit}'
}

# apt-get, quietly, its last lines shown and one line of ours when it fails: a signature or
# checksum that does not match ends up here, and nothing is installed.
apt_or_die() {
  local what=$1 output
  shift
  if ! output=$(DEBIAN_FRONTEND=noninteractive apt-get "$@" 2>&1); then
    printf '%s\n' "$output" | tail -n 5 >&2
    die "$what failed: $(printf '%s\n' "$output" | grep -E '^E: ' | head -n 1)"
  fi
}

install_from_newer_debian() {
  local codename=$1 mirror
  mirror=$(configured_debian_mirror "$codename")
  [ -n "$mirror" ] || die "no apt source for '$codename' found; add the Debian mirror to /etc/apt/sources.list, then rerun."
  [ -r "$ARCHIVE_KEYRING" ] || die "$ARCHIVE_KEYRING is missing; apt-get install debian-archive-keyring, then rerun."
  echo "adding $NEWER_SUITE from $mirror as an apt source, pinned to: ${ENGINE_PACKAGES[*]}"
  cat >"$NEWER_SOURCE" <<SOURCE
# Written by scripts/install-docker.sh: Debian $NEWER_SUITE, for the Docker engine only
# (see $NEWER_PINNING). Signed by the Debian archive; apt checks it.
Types: deb
URIs: $mirror
Suites: $NEWER_SUITE
Components: main
Signed-By: $ARCHIVE_KEYRING
SOURCE
  cat >"$NEWER_PINNING" <<PINNING
# Written by scripts/install-docker.sh: nothing comes from Debian $NEWER_SUITE
# unless it is named below, so the host stays on its own release...
Package: *
Pin: release n=$NEWER_SUITE
Pin-Priority: 1

# ...but the Docker engine does, and \`apt-get upgrade\` keeps it patched there.
Package: ${ENGINE_PACKAGES[*]}
Pin: release n=$NEWER_SUITE
Pin-Priority: 500
PINNING
  apt_or_die "reading the $NEWER_SUITE package index" update
  apt_or_die "installing the Docker engine from $NEWER_SUITE" install -y --no-install-recommends "${ENGINE_PACKAGES[@]}"
}

# Installing and starting an engine both need root: say so before trying either.
require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-docker: no Docker engine answers and this is not root." >&2
    die "run this script with sudo, or install Docker Engine >= $MIN_ENGINE_MAJOR with Compose v2 and Buildx yourself (https://docs.docker.com/engine/install/)."
  fi
}

install_engine() {
  if ! command -v apt-get >/dev/null 2>&1 || [ ! -r /etc/os-release ]; then
    echo "install-docker: this is not a Debian or Ubuntu system with apt; no engine was installed." >&2
    die "install Docker Engine >= $MIN_ENGINE_MAJOR with Compose v2 and Buildx (Docker Desktop on macOS), then rerun."
  fi
  # shellcheck source=/dev/null
  . /etc/os-release
  apt_or_die "reading the package index" update
  apt_or_die "installing iptables and CA certificates" install -y --no-install-recommends ca-certificates iptables
  local candidate
  candidate=$(apt-cache policy docker.io | awk '/Candidate:/ {print $2}')
  if [ "${candidate%%.*}" != "(none)" ] && [ "${candidate%%.*}" -ge "$MIN_ENGINE_MAJOR" ] 2>/dev/null; then
    local plugins=(docker-compose docker-buildx)
    [ "$ID" = ubuntu ] && plugins=(docker-compose-v2 docker-buildx)
    apt_or_die "installing the Docker engine" install -y --no-install-recommends docker.io "${plugins[@]}"
  elif [ "$ID" = debian ]; then
    install_from_newer_debian "${VERSION_CODENAME:?/etc/os-release has no VERSION_CODENAME}"
  else
    die "$PRETTY_NAME packages no Docker Engine >= $MIN_ENGINE_MAJOR; install it from https://docs.docker.com/engine/install/, then rerun."
  fi
}

# Air-gapped mode builds its base images from a Debian root filesystem made by mmdebstrap.
install_mmdebstrap() {
  command -v mmdebstrap >/dev/null 2>&1 && return
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "mmdebstrap is missing; install it (apt-get install mmdebstrap) as root, then rerun."
  fi
  apt_or_die "reading the package index" update
  apt_or_die "installing mmdebstrap" install -y --no-install-recommends mmdebstrap
  echo "installed mmdebstrap (for air-gapped base images)"
}

main() {
  local with_mmdebstrap=false
  case "${1:-}" in
    -h|--help) echo "$USAGE"; exit 0 ;;
    --with-mmdebstrap) with_mmdebstrap=true ;;
    "") ;;
    *) echo "$USAGE" >&2; exit 2 ;;
  esac
  if "$with_mmdebstrap"; then
    install_mmdebstrap
  fi
  local version
  version=$(server_version)
  if [ -n "$version" ]; then
    require_current_engine "$version"
    exit 0
  fi
  require_root
  if [ "$(installed_engine_major)" -lt "$MIN_ENGINE_MAJOR" ]; then
    install_engine
  fi
  start_engine
  require_current_engine
}

main "$@"
