#!/usr/bin/env bash
# Build the Tingxie image with podman where no registry can be pulled from, run it, and transcribe
# a clip through it. Used to check the Dockerfile on a machine without Docker or Docker Hub:
#
#   1. debootstrap makes a Debian 12 root file system from Debian's packages;
#   2. `podman import` turns it into the base image (in place of debian:bookworm-slim);
#   3. `podman build` builds the Dockerfile on it, with the host's pip configuration, CA bundle and
#      local wheel directories mounted for the build only (nothing of them stays in the image);
#   4. the image runs, `tingxie health` waits for it, and `tingxie transcribe` sends it a clip.
#
# Usage: sudo scripts/build-container.sh [AUDIO_FILE]   (default: ../shared/audio/jfk.flac)
# Needs: podman, debootstrap (apt-get install podman debootstrap runc), root, and the project's venv
# (for the `tingxie` client) at .venv. Environment: IMAGE (default localhost/tingxie:cpu),
# PORT (default 18000), ROOTFS (default /var/tmp/tingxie-rootfs, reused when present).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/tingxie:cpu}
BASE=${BASE:-localhost/tingxie-base:bookworm}
PORT=${PORT:-18000}
ROOTFS=${ROOTFS:-/var/tmp/tingxie-rootfs}
AUDIO=${1:-../shared/audio/jfk.flac}
# Settings that also work inside a sandbox without systemd or CAP_SYS_RESOURCE (such as CI's):
# cgroupfs, runc where installed (crun refuses hybrid cgroups there), limits no higher than the
# host's, and the image's health check run by hand below (podman schedules it through systemd).
PODMAN=(podman --cgroup-manager=cgroupfs)
if command -v runc >/dev/null; then PODMAN+=(--runtime runc); fi
RUN_OPTS=(--ulimit "nofile=4096:4096" --ulimit "nproc=4096:4096" --no-healthcheck)

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

if ! "${PODMAN[@]}" image exists "$BASE"; then
    if [ ! -x "$ROOTFS/usr/bin/apt-get" ]; then
        step "debootstrap a Debian 12 (bookworm) root file system into $ROOTFS"
        debootstrap --variant=minbase bookworm "$ROOTFS"
    fi
    step "import it as $BASE"
    tar -C "$ROOTFS" -c . | "${PODMAN[@]}" import - "$BASE"
fi

# pip's configuration on this host, mounted read-only into each RUN step of the build and nowhere
# else: one merged pip.conf (files and PIP_* variables) at the image's /etc/pip.conf, its CA bundle
# beside it (the image keeps its own /etc/ssl), and the local folders and files it names.
conf_dir=$(mktemp -d)
trap 'rm -rf "$conf_dir"' EXIT
mounts=(--volume "$conf_dir/pip.conf:/etc/pip.conf:ro")
mount_ro() { [ -e "$1" ] && mounts+=(--volume "$1:$1:ro"); return 0; }
{
    echo "[global]"
    pip config list 2>/dev/null | sed -n "s/^\(:env:\|global\)\.\([a-z-]*\)='\(.*\)'$/\2 = \3/p" |
        grep -v '^cert = ' | awk '!seen[$1]++'
} > "$conf_dir/pip.conf"
cert=$(pip config list 2>/dev/null | sed -n "s/^\(:env:\|global\)\.cert='\(.*\)'$/\2/p" | head -n 1)
if [ -n "$cert" ]; then
    mounts+=(--volume "$cert:/opt/host-pip/ca.crt:ro")
    echo "cert = /opt/host-pip/ca.crt" >> "$conf_dir/pip.conf"
fi
for location in $(sed -n 's/^\(find-links\|extra-index-url\|index-url\|constraint\) = //p' "$conf_dir/pip.conf"); do
    path=${location#file://}
    # A file:// index (DIR/simple) links to files beside it: mount its parent.
    case "$location" in file://*/simple | file://*/simple/) path=$(dirname "${path%/}") ;; esac
    case "$location" in /* | file://*) mount_ro "$path" ;; esac
done

step "build $IMAGE"
"${PODMAN[@]}" build --isolation=chroot --network=host --format=docker \
    --build-arg "BASE_IMAGE=$BASE" "${mounts[@]}" -t "$IMAGE" .
"${PODMAN[@]}" image ls "$IMAGE"

step "run it on 127.0.0.1:$PORT"
container=$("${PODMAN[@]}" run -d --rm "${RUN_OPTS[@]}" --network=host \
    -e SERVER__PORT="$PORT" -e SERVER__HOST=127.0.0.1 -e WHISPER__DEFAULT_MODEL=tiny.en "$IMAGE")
trap '"${PODMAN[@]}" stop -t 20 "$container" >/dev/null || true; rm -rf "$conf_dir"' EXIT
for _ in $(seq 1 120); do
    if "${PODMAN[@]}" exec "$container" tingxie health --server "http://127.0.0.1:$PORT" 2>/dev/null; then
        break
    fi
    sleep 1
done
"${PODMAN[@]}" exec "$container" tingxie health --server "http://127.0.0.1:$PORT"

step "transcribe $AUDIO through it"
.venv/bin/python -m app.cli transcribe "$AUDIO" --server "http://127.0.0.1:$PORT" --format srt
step "done: $IMAGE works"
