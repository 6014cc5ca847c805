# SPDX-License-Identifier: MIT
# bench/allocators.sh - sourced by bench/run.sh and bench/instr.sh: the
# allocators we measure, where their libraries are, and how to install them.
# The caller sets ROOT (the source tree), BUILD (the build directory) and
# defines note().

# allocator -> Debian package, and the library file it must ship.
declare -A PKG=([glibc]=libc6 [jemalloc]=libjemalloc2 [mimalloc]=libmimalloc2.0
                [tcmalloc]=libtcmalloc-minimal4)
declare -A LIBNAME=([glibc]=libc.so.6 [jemalloc]=libjemalloc.so.2 [mimalloc]=libmimalloc.so.2
                    [tcmalloc]=libtcmalloc_minimal.so.4)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# apt_install PKG...: with apt-get update first, as root or through sudo.
apt_install() {
    local sudo=
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "need root (or sudo) to install: $*" >&2; return 1; }
        sudo=sudo
    fi
    note "installing $*"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

# The installed path of an allocator's library, from the package's file
# list; fails if the package does not provide it.
package_lib() {
    local path
    path=$(dpkg -L "${PKG[$1]}" 2>/dev/null | grep -E "/${LIBNAME[$1]//./\\.}\$" | head -n 1) || true
    [ -n "$path" ] && [ -e "$path" ] || return 1
    echo "$path"
}

# What to LD_PRELOAD for an allocator (empty for glibc), and the file that
# `malloc` must then resolve to.
preload_of() {
    case $1 in
        glibc) echo "" ;;
        ebb|ebb-secure) echo "$BUILD/libebb.so" ;;
        *) package_lib "$1" ;;
    esac
}
expected_of() {
    case $1 in
        glibc) package_lib glibc ;;
        *) preload_of "$1" ;;
    esac
}

# Environment an allocator runs with (ebb-secure: ebb in its secure mode).
env_of() {
    case $1 in
        ebb-secure) echo "EBB_SECURE=1" ;;
        *) echo "" ;;
    esac
}

version_of() {
    case $1 in
        ebb|ebb-secure)
            local v rev
            v=$(sed -n 's/^project(ebb VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
            rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || rev=
            if [ -n "$rev" ] && [ -n "$(git -C "$ROOT" status --porcelain -- src include 2>/dev/null)" ]; then
                rev="$rev+changes"
            fi
            echo "${v:-?}${rev:+ (git $rev)}" ;;
        *) dpkg-query -W -f='${Version}' "${PKG[$1]}" 2>/dev/null || echo "?" ;;
    esac
}
