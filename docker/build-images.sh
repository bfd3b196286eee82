#!/usr/bin/env bash
# Builds every image docker-compose.betanet.yml needs, without a registry:
#
#   betanet-base:local        Debian (debootstrap --variant=minbase, plus
#                             curl and ca-certificates), `docker import`ed
#   betanet-prometheus:local  the same plus Debian's prometheus package
#   betanet:local             Dockerfile.betanet, target `prebuilt`, on
#                             betanet-base:local with the binary from
#                             `cargo build --release` on this host
#
# Grafana has no Debian package, so there is no local Grafana image; the CI
# stack runs without it (scripts/compose-e2e.sh).
#
# Base images that already exist are kept (REBUILD_BASE=1 rebuilds them);
# betanet:local is rebuilt on every run (a docker build of a few seconds).
# Downloaded .deb files are cached in $MIXNET_DEBOOTSTRAP_CACHE.
#
# The Debian mirror and suite are DEBIAN_MIRROR and DEBIAN_SUITE when set;
# otherwise they are those of the first Debian entry in this host's apt
# sources, read in apt's order (sources.list, then sources.list.d/*.list and
# deb822 *.sources by name): type deb, component main, a URI containing
# "debian" (a `mirror+file:` list gives its first URI), a plain suite such
# as bookworm (not -security, -updates, -backports). No mirror from either
# is an error; no suite from either means bookworm. The script names no
# mirror of its own.
#
# Needs: root (or sudo) for debootstrap, a Debian mirror, and a host whose
# glibc is no newer than the suite's: the binary is built here and run
# there (the image's ldd check catches a mismatch).
#
# Usage: docker/build-images.sh                 build the images
#        docker/build-images.sh --print-mirror  print "MIRROR SUITE" and exit
#                                               (no root, docker or network)
#
# Environment:
#   MIXNET_IMAGE, MIXNET_BASE_IMAGE, PROMETHEUS_IMAGE   image names
#   MIXNET_BINARY   use this binary instead of running cargo build
#   CARGO_TARGET_DIR cargo's target directory (default target)
#   DEBIAN_MIRROR    e.g. http://MIRROR/debian
#   DEBIAN_SUITE     e.g. bookworm
#   APT_SOURCES_DIR  where the apt sources are read (default /etc/apt; tests)
#   REBUILD_BASE=1   rebuild the base and Prometheus images even if present
set -euo pipefail
cd "$(dirname "$0")/.."

MIXNET_IMAGE=${MIXNET_IMAGE:-betanet:local}
BASE_IMAGE=${MIXNET_BASE_IMAGE:-betanet-base:local}
PROMETHEUS_IMAGE=${PROMETHEUS_IMAGE:-betanet-prometheus:local}
REBUILD_BASE=${REBUILD_BASE:-0}
CACHE=${MIXNET_DEBOOTSTRAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/betanet-debootstrap}
LABEL="built by betanet docker/build-images.sh"
PATH_DEFAULT=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

T0=$SECONDS
log() { printf '[build-images %3ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# One-line format (`deb [options] URI SUITE COMPONENT...`): prints
# "URI SUITE" of the first Debian entry and stops.
ONE_LINE_SOURCES='
{ sub(/#.*/, "") }
$1 != "deb" { next }
{
    line = $0
    sub(/^[ \t]*deb[ \t]+/, "", line)
    if (line ~ /^\[/ && !sub(/^\[[^]]*\][ \t]*/, "", line)) next
    n = split(line, f, " ")
    main = 0
    for (i = 3; i <= n; i++) if (f[i] == "main") main = 1
    if (main && debian(f[1], f[2])) { print f[1], f[2]; exit }
}'

# deb822 format (stanzas of `Field: value`, continuation lines indented):
# the same for the first Debian URI and suite of an enabled deb stanza.
DEB822_SOURCES='
function has(list, word,    w, n, i) {
    n = split(list, w, " ")
    for (i = 1; i <= n; i++) if (w[i] == word) return 1
    return 0
}
function stanza(    u, s, nu, ns, i, j) {
    if (has(types, "deb") && has(comps, "main") && enabled != "no") {
        nu = split(uris, u, " "); ns = split(suites, s, " ")
        for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
            if (debian(u[i], s[j])) { print u[i], s[j]; done = 1; exit }
    }
    types = uris = suites = comps = enabled = field = ""
}
/^[ \t]*#/ { next }
/^[ \t]*$/ { stanza(); next }
/^[ \t]/ {
    if (field == "types") types = types " " $0
    else if (field == "uris") uris = uris " " $0
    else if (field == "suites") suites = suites " " $0
    else if (field == "components") comps = comps " " $0
    next
}
{
    field = tolower(substr($0, 1, index($0, ":") - 1))
    value = substr($0, index($0, ":") + 1)
    if (field == "types") types = value
    else if (field == "uris") uris = value
    else if (field == "suites") suites = value
    else if (field == "components") comps = value
    else if (field == "enabled") { enabled = tolower(value); gsub(/[ \t]/, "", enabled) }
}
END { if (!done) stanza() }'

# What counts as a Debian entry: a URI debootstrap can fetch from (or an
# apt mirror list file, resolved below) with "debian" in it, not the
# security archive, and a plain suite (a codename or alias: no -updates,
# -security, -backports or vendor suffixes).
DEBIAN_ENTRY='
function debian(uri, suite) {
    return (uri ~ /^(https?|ftp|file):/ && tolower(uri) ~ /debian/ || uri ~ /^mirror\+file:/) &&
        uri !~ /security/ && suite ~ /^[a-z]+$/
}'

# The first URI listed in the apt mirror list file of a `mirror+file:` URI
# (as Debian's cloud images use), if it is a Debian one; nothing otherwise.
mirror_list_first() {
    local path=${1#mirror+file:}
    path=${path#//}
    awk '!/^[ \t]*(#|$)/ { if (tolower($1) ~ /debian/ && $1 !~ /security/) print $1; exit }' \
        "$path" 2>/dev/null || true
}

# "URI SUITE" of the first Debian entry in the apt sources under $1, read in
# apt's order (sources.list, then sources.list.d by name); nothing if none.
host_debian_source() {
    local LC_ALL=C dir=$1 file entry uri program
    for file in "$dir/sources.list" "$dir"/sources.list.d/*; do
        [ -f "$file" ] || continue
        case $file in
            *.list) program=$ONE_LINE_SOURCES ;;
            *.sources) program=$DEB822_SOURCES ;;
            *) continue ;; # apt ignores other names (*.disabled, *.save, ...)
        esac
        entry=$(awk "$DEBIAN_ENTRY$program" "$file" 2>/dev/null || true)
        uri=${entry% *}
        case $uri in
            mirror+file:*) uri=$(mirror_list_first "$uri") ;;
        esac
        if [ -n "$uri" ]; then
            printf '%s %s\n' "$uri" "${entry#* }"
            return
        fi
    done
}

# Sets MIRROR and SUITE (see the header) or dies saying what to set.
resolve_debian_source() {
    local host=""
    if [ -z "${DEBIAN_MIRROR:-}" ] || [ -z "${DEBIAN_SUITE:-}" ]; then
        host=$(host_debian_source "${APT_SOURCES_DIR:-/etc/apt}")
    fi
    MIRROR=${DEBIAN_MIRROR:-${host% *}}
    SUITE=${DEBIAN_SUITE:-${host#* }}
    SUITE=${SUITE:-bookworm}
    [ -n "$MIRROR" ] || die "no Debian mirror in this host's apt sources \
(${APT_SOURCES_DIR:-/etc/apt}); set DEBIAN_MIRROR, e.g. DEBIAN_MIRROR=http://MIRROR/debian"
}

case ${1:-} in
    "") ;;
    --print-mirror)
        resolve_debian_source
        printf '%s %s\n' "$MIRROR" "$SUITE"
        exit 0
        ;;
    *) die "unknown argument $1 (usage: $0 [--print-mirror])" ;;
esac

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "debootstrap needs root (or sudo)"
    SUDO=(sudo)
fi

# The legacy builder is used when BuildKit's buildx plugin is missing (a new
# docker client refuses DOCKER_BUILDKIT=1 without it).
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
# Removes the image a tag pointed to before a rebuild, unless still in use.
drop_old() {
    local old=$1 image=$2
    if [ -n "$old" ] && [ "$old" != "$(image_id "$image")" ]; then
        docker rmi "$old" >/dev/null 2>&1 || true
    fi
}

ensure_debootstrap() {
    command -v debootstrap >/dev/null 2>&1 && return
    log "installing debootstrap"
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/betanet-images.XXXXXX")
CARGO_PID=""
cleanup() {
    if [ -n "$CARGO_PID" ]; then
        kill "$CARGO_PID" 2>/dev/null || true
        wait "$CARGO_PID" 2>/dev/null || true
    fi
    # debootstrap unmounts what it mounts, but not when it fails half way.
    local m
    for m in $(awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
        "${SUDO[@]}" umount -l "$m" 2>/dev/null || true
    done
    "${SUDO[@]}" rm -rf "$WORK"
}
trap cleanup EXIT

# make_rootfs DIR PACKAGES: a minbase $SUITE from $MIRROR with PACKAGES,
# trimmed.
make_rootfs() {
    local dir=$1 include=$2
    ensure_debootstrap
    mkdir -p "$CACHE"
    log "debootstrap $SUITE (minbase + $include) from $MIRROR"
    if ! "${SUDO[@]}" debootstrap --variant=minbase --include="$include" \
        --cache-dir="$CACHE" "$SUITE" "$dir" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
        tail -n 30 "$WORK/debootstrap.log" >&2
        [ -f "$dir/debootstrap/debootstrap.log" ] && tail -n 30 "$dir/debootstrap/debootstrap.log" >&2
        die "debootstrap failed"
    fi
    # Images need no package lists, caches, docs or logs.
    "${SUDO[@]}" rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin \
        "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/debconf/*-old \
        "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
        "$dir"/usr/share/locale/* "$dir"/var/log/*.log "$dir"/var/log/apt/* \
        "$dir"/tmp/* "$dir"/root/.cache
    # Containers get these from the engine.
    "${SUDO[@]}" rm -f "$dir/etc/hostname" "$dir/etc/resolv.conf"
    printf 'deb %s %s main\n' "$MIRROR" "$SUITE" | "${SUDO[@]}" tee "$dir/etc/apt/sources.list" >/dev/null
}

# import_rootfs DIR IMAGE [--change ...]
import_rootfs() {
    local dir=$1 image=$2
    shift 2
    log "docker import $image"
    "${SUDO[@]}" tar --numeric-owner -C "$dir" -c . |
        docker import \
            --change "ENV PATH=$PATH_DEFAULT" \
            --change 'ENV LANG=C.UTF-8' \
            --change "LABEL org.opencontainers.image.description=\"$LABEL\"" \
            "$@" - "$image" >/dev/null
}

build_base() {
    if image_exists "$BASE_IMAGE" && [ "$REBUILD_BASE" != 1 ]; then
        log "$BASE_IMAGE exists, kept (REBUILD_BASE=1 rebuilds it)"
        return
    fi
    local dir=$WORK/base old
    old=$(image_id "$BASE_IMAGE")
    make_rootfs "$dir" curl,ca-certificates
    import_rootfs "$dir" "$BASE_IMAGE" --change 'CMD ["/bin/bash"]'
    drop_old "$old" "$BASE_IMAGE"
    "${SUDO[@]}" rm -rf "$dir"
}

build_prometheus() {
    if image_exists "$PROMETHEUS_IMAGE" && [ "$REBUILD_BASE" != 1 ]; then
        log "$PROMETHEUS_IMAGE exists, kept (REBUILD_BASE=1 rebuilds it)"
        return
    fi
    local dir=$WORK/prometheus old
    old=$(image_id "$PROMETHEUS_IMAGE")
    make_rootfs "$dir" curl,ca-certificates,prometheus
    # 200 MiB of time zone data the web UI does not load.
    "${SUDO[@]}" rm -rf "$dir/usr/share/javascript/moment-timezone/data"
    # /prometheus holds the TSDB (a volume in compose), as in the upstream image.
    "${SUDO[@]}" mkdir -p "$dir/prometheus"
    "${SUDO[@]}" chroot "$dir" chown prometheus:prometheus /prometheus
    "${SUDO[@]}" chroot "$dir" /usr/bin/prometheus --version >/dev/null ||
        die "the prometheus binary does not run"
    import_rootfs "$dir" "$PROMETHEUS_IMAGE" \
        --change 'USER prometheus' \
        --change 'WORKDIR /prometheus' \
        --change 'EXPOSE 9090' \
        --change 'ENTRYPOINT ["/usr/bin/prometheus"]' \
        --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'
    drop_old "$old" "$PROMETHEUS_IMAGE"
    "${SUDO[@]}" rm -rf "$dir"
}

# cargo (CPU-bound) runs while debootstrap (mostly waiting on dpkg and the
# disk) builds the base images.
start_cargo() {
    [ -n "${MIXNET_BINARY:-}" ] && return
    log "cargo build --release --locked --bin betanet (in the background)"
    cargo build --release --locked --bin betanet >"$WORK/cargo.log" 2>&1 &
    CARGO_PID=$!
}

build_betanet() {
    local binary=${MIXNET_BINARY:-}
    if [ -z "$binary" ]; then
        if ! wait "$CARGO_PID"; then
            CARGO_PID=""
            tail -n 40 "$WORK/cargo.log" >&2
            die "cargo build failed"
        fi
        CARGO_PID=""
        log "cargo build: $(grep -E '^ *Finished' "$WORK/cargo.log" | sed 's/^ *//' || true)"
        binary=${CARGO_TARGET_DIR:-target}/release/betanet
    fi
    [ -x "$binary" ] || die "no betanet binary at $binary"
    # The binary runs on $SUITE: its glibc must not be newer than the suite's
    # (the ldd check below fails if it is).
    local need
    need=$(objdump -T "$binary" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1 || true)
    log "binary $binary needs ${need:-an unknown glibc}; host has glibc $(getconf GNU_LIBC_VERSION | awk '{print $2}')"

    local ctx=$WORK/context
    mkdir -p "$ctx/config" "$ctx/docker" "$ctx/target/release"
    cp config/mixnode.toml "$ctx/config/"
    cp docker/entrypoint.sh docker/healthcheck.sh "$ctx/docker/"
    cp "$binary" "$ctx/target/release/betanet"
    log "docker build $MIXNET_IMAGE (target prebuilt, from $BASE_IMAGE)"
    local old
    old=$(image_id "$MIXNET_IMAGE")
    docker build -q -f Dockerfile.betanet --target prebuilt \
        --build-arg RUNTIME_IMAGE="$BASE_IMAGE" \
        --build-arg BINARY=target/release/betanet \
        -t "$MIXNET_IMAGE" "$ctx" >/dev/null
    drop_old "$old" "$MIXNET_IMAGE"

    # Every library the binary links must resolve inside the image.
    local libs
    libs=$(docker run --rm --entrypoint ldd "$MIXNET_IMAGE" /usr/local/bin/betanet)
    if grep -q 'not found' <<<"$libs"; then
        printf '%s\n' "$libs" >&2
        die "the betanet binary misses libraries in $BASE_IMAGE"
    fi
    log "$MIXNET_IMAGE: $(docker run --rm --entrypoint betanet "$MIXNET_IMAGE" --version)"
}

# The mirror is needed only for base images still to build; resolving it
# first fails fast, before cargo starts.
if [ "$REBUILD_BASE" = 1 ] || ! image_exists "$BASE_IMAGE" || ! image_exists "$PROMETHEUS_IMAGE"; then
    resolve_debian_source
fi
start_cargo
build_base
build_prometheus
build_betanet
# Untagged leftovers of earlier builds of these images (and only of these).
docker image prune -f --filter "label=org.opencontainers.image.description=$LABEL" >/dev/null || true
log "done: $BASE_IMAGE $PROMETHEUS_IMAGE $MIXNET_IMAGE"
