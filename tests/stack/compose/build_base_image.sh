#!/bin/sh
# Builds the images docker-compose.yml needs where the official apache/airflow image cannot be
# pulled: Debian bookworm from Debian's own packages (debootstrap, `podman import`); on it, Airflow from
# PyPI at the same version as the official image (Containerfile.base), PostgreSQL and Redis from Debian. Cached outside the repository
# (NTROPY_COMPOSE_CACHE, default ~/.cache/ntropy-compose): later runs reuse the rootfs and the images.
#
#   tests/stack/compose/build_base_image.sh   # prints localhost/ntropy-airflow-base:<AIRFLOW_VERSION>
#
# Needs root (debootstrap), podman (runc runtime; `default_ulimits = []` in containers.conf where the
# container cannot raise its limits) and network access to deb.debian.org and PyPI.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
AIRFLOW_VERSION=${AIRFLOW_VERSION:-$(sed -n 's/^apache-airflow==//p' "$repo/constraints.txt")}
cache=${NTROPY_COMPOSE_CACHE:-$HOME/.cache/ntropy-compose}
debian=localhost/ntropy-debian-bookworm:latest
base=localhost/ntropy-airflow-base:$AIRFLOW_VERSION
mkdir -p "$cache"

if ! podman image exists "$debian"; then
    if [ ! -s "$cache/debian-bookworm.tar" ]; then
        rm -rf "$cache/rootfs"
        debootstrap --variant=minbase \
            --include=python3,python3-venv,python3-dev,ca-certificates,curl,libpq5,dumb-init \
            bookworm "$cache/rootfs" http://deb.debian.org/debian
        rm -rf "$cache/rootfs/var/cache/apt/archives/"*.deb "$cache/rootfs/var/lib/apt/lists/"*
        tar -C "$cache/rootfs" -cf "$cache/debian-bookworm.tar" .
        rm -rf "$cache/rootfs"
    fi
    podman import "$cache/debian-bookworm.tar" "$debian"
fi

if ! podman image exists "$base"; then
    # pip reaches PyPI through the host's network and trusts the host's CA bundle.
    podman build --network host \
        --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt:ro \
        --build-arg DEBIAN_IMAGE="$debian" --build-arg AIRFLOW_VERSION="$AIRFLOW_VERSION" \
        --file "$here/Containerfile.base" --tag "$base" "$repo"
fi
# The compose file's postgres and redis images, built from Debian's packages under the names it uses (a
# local image of that name is used instead of pulling).
POSTGRES_IMAGE=${POSTGRES_IMAGE:-docker.io/library/postgres:16}
REDIS_IMAGE=${REDIS_IMAGE:-docker.io/library/redis:7.2-bookworm}
for pair in "postgres:$POSTGRES_IMAGE" "redis:$REDIS_IMAGE"; do
    kind=${pair%%:*}
    image=${pair#*:}
    if ! podman image exists "$image"; then
        podman build --network host --build-arg DEBIAN_IMAGE="$debian" \
            --file "$here/Containerfile.$kind" --tag "$image" "$repo"
    fi
done
echo "$base"
