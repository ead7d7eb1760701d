#!/usr/bin/env bash
# Install and start a Docker Engine (>= 26) with Compose v2 and Buildx from the
# distribution's own packages, so the pipeline runs on a bare Debian/Ubuntu box.
# Idempotent: when an engine already answers it only prints the versions.
set -euo pipefail

readonly USAGE="usage: scripts/install-docker.sh [--with-mmdebstrap] [--help]   (env: DOCKERD_LOG=/var/log/dockerd.log DOCKERD_TIMEOUT=60)"
readonly MIN_ENGINE_MAJOR=26
readonly NEWER_SUITE=trixie # Debian 13: the first Debian release whose docker.io is >= 26
readonly DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
readonly DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-60}

die() { echo "install-docker: $*" >&2; exit 1; }

print_versions() {
  echo "engine:  $(docker version --format '{{.Server.Version}}')"
  echo "compose: $(docker compose version --short)"
  echo "buildx:  $(docker buildx version | awk '{print $2}')"
}

engine_answers() { docker info >/dev/null 2>&1; }

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

install_from_newer_debian() {
  local codename=$1 mirror arch workdir index
  mirror=$(configured_debian_mirror "$codename")
  [ -n "$mirror" ] || die "no apt source for '$codename' found; add the Debian mirror to /etc/apt/sources.list, then rerun."
  arch=$(dpkg --print-architecture)
  workdir=$(mktemp -d)
  index="${mirror%/}/dists/$NEWER_SUITE/main/binary-$arch/Packages.xz"
  echo "fetching Docker packages from $NEWER_SUITE on ${mirror}"
  curl -fsSL --retry 3 -o "$workdir/Packages.xz" "$index" \
    || die "cannot reach $index; check the network or the mirror in your apt sources, then rerun."
  xz -d "$workdir/Packages.xz"
  local package filename
  # tini is left to the host release: the newer build needs a newer libc.
  for package in docker.io docker-cli docker-compose docker-buildx; do
    filename=$(awk -v p="$package" '$1 == "Package:" {hit = ($2 == p)} hit && $1 == "Filename:" {print $2; exit}' "$workdir/Packages")
    [ -n "$filename" ] || die "package $package is missing from $index; pick another mirror in your apt sources."
    curl -fsSL --retry 3 -o "$workdir/$(basename "$filename")" "${mirror%/}/$filename" \
      || die "cannot download $filename from ${mirror}; check the network, then rerun."
  done
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$workdir"/*.deb
  rm -rf "$workdir"
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
  DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    || die "apt-get update failed; check the network and your apt sources, then rerun."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl xz-utils ca-certificates iptables >/dev/null
  local candidate
  candidate=$(apt-cache policy docker.io | awk '/Candidate:/ {print $2}')
  if [ "${candidate%%.*}" != "(none)" ] && [ "${candidate%%.*}" -ge "$MIN_ENGINE_MAJOR" ] 2>/dev/null; then
    local plugins=(docker-compose docker-buildx)
    [ "$ID" = ubuntu ] && plugins=(docker-compose-v2 docker-buildx)
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io "${plugins[@]}"
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
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null \
    || die "apt-get could not install mmdebstrap; check your apt sources, then rerun."
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
  if engine_answers; then
    print_versions
    exit 0
  fi
  require_root
  if [ "$(installed_engine_major)" -lt "$MIN_ENGINE_MAJOR" ]; then
    install_engine
  fi
  start_engine
  print_versions
}

main "$@"
