#!/usr/bin/env bash
# Builds the local base image `quiver-base:bookworm` from Debian's packages,
# for machines without a container registry (nothing can be pulled):
#
#   sudo deploy/base-image.sh            # or as root; needs debootstrap
#
# debootstrap --variant=minbase installs a minimal Debian bookworm into a
# temporary folder (plus ca-certificates, for TLS clients of the image), the
# folder is trimmed (apt lists, docs, man pages, locales) and `docker import`ed.
# Does nothing when the tag already exists (pass --force to rebuild).
#
# Environment: QUIVER_BASE_TAG (default quiver-base:bookworm),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), SUITE (bookworm).
set -euo pipefail

tag="${QUIVER_BASE_TAG:-quiver-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="${SUITE:-bookworm}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

say() { echo "base-image: $*" >&2; }

if [[ $force == 0 ]] && docker image inspect "$tag" >/dev/null 2>&1; then
    say "$tag exists, nothing to do (--force rebuilds it)"
    exit 0
fi
command -v debootstrap >/dev/null || {
    say "debootstrap is missing: apt-get install debootstrap"
    exit 1
}
if [[ $(id -u) != 0 ]]; then
    say "debootstrap needs root: run as root or with sudo"
    exit 1
fi

root="$(mktemp -d /tmp/quiver-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
say "debootstrap --variant=minbase $suite into $root from $mirror (a few minutes)"
debootstrap --variant=minbase --include=ca-certificates \
    "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
    say "debootstrap failed; last lines of its log:"
    tail -20 "$root.log" >&2
    exit 1
}
rm -f "$root.log"
say "trimming apt lists, caches, docs and locales"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/log/*.log "$root"/tmp/*
say "docker import as $tag"
tar -C "$root" --numeric-owner -c . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/sh"]' \
        --message "debootstrap --variant=minbase $suite + ca-certificates" \
        - "$tag" >/dev/null
say "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
