#!/bin/sh
# Copies the tools the inspector runs inside a target's root into FOLDER, each rewritten to
# find its ELF interpreter and libraries under /proc/self/fd/7 (this image's root, kept open
# by pipeline/inspector.py across its chroot): inside the target nothing of ours exists, and
# the target's own loader and libraries, if it has any, are not ours to trust.
# usage: patch-tools.sh FOLDER
set -eu
folder=${1:?usage: patch-tools.sh FOLDER}
through=/proc/self/fd/7
mkdir -p "$folder"

# The real files (never a symlink: an absolute link would resolve in the target's root).
loader=$(readlink -f "$(patchelf --print-interpreter "$(readlink -f /bin/dash)")")
libraries=$(dirname "$loader")

# The program file, not a shell builtin of the same name (printf, test).
program() {
  for directory in /usr/bin /usr/sbin /bin /sbin; do
    [ -x "$directory/$1" ] && { echo "$directory/$1"; return; }
  done
  echo "patch-tools.sh: no program $1 in this image" >&2
  return 1
}

for tool in sh cat cut grep head id ls md5sum printf readlink realpath sha256sum stat \
            test tr uname wc find getent ps ss nc curl setpriv timeout psql; do
  case $tool in
    sh) source=$(readlink -f /bin/dash) ;;
    psql) source=$(readlink -f "$(ls -d /usr/lib/postgresql/*/bin/psql | tail -n 1)") ;;
    *) source=$(readlink -f "$(program "$tool")") ;;
  esac
  cp "$source" "$folder/$tool"
  patchelf --set-interpreter "$through$loader" \
    --force-rpath --set-rpath "$through$libraries:$through/usr/lib" "$folder/$tool"
done
