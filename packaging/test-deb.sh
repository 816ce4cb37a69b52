#!/usr/bin/env bash
# Installs the rgost .deb, checks what it installed and that each systemd
# unit works as written, then removes the package again (also on failure).
#
#     cargo deb -p rgost --locked && bash packaging/test-deb.sh target/debian/rgost_*.deb
#
# Run as root on Debian (dpkg, setpriv, ip, unshare). An installed rgost
# package is replaced and purged afterwards, so outside CI (CI=true) the
# script refuses to run where one is installed.
#
# Checks:
#  - /usr/bin/rgost runs and is the packaged version; it carries no debug
#    info (the release profile ships none);
#  - /etc/rgost/server.yaml is a conffile; the rgost user exists;
#  - `systemd-analyze verify` accepts each unit (when that command exists);
#  - for each unit, ExecStart= as written (%i substituted, the config file
#    replaced by an example where the unit's own is not installed) passes
#    `rgost --check` as the unit's User=;
#  - each unit's ExecStart=, run as its User= with only its
#    AmbientCapabilities= (setpriv), in a namespace of its own, comes up:
#    the server on a port below 1024, the client with its TUN device,
#    addresses and routes. No systemd is needed.
set -euo pipefail

deb=${1:?usage: test-deb.sh PACKAGE.deb}
[ "$(id -u)" -eq 0 ] || { echo "test-deb.sh: run as root (dpkg -i)" >&2; exit 1; }
[ -f "$deb" ] || { echo "test-deb.sh: no file $deb" >&2; exit 1; }

if dpkg-query -W -f='${Status}' rgost 2>/dev/null | grep -q "ok installed"; then
    if [ "${CI:-}" != true ]; then
        echo "test-deb.sh: the rgost package is installed here; the test would replace and purge it (set CI=true to allow)" >&2
        exit 1
    fi
    echo "test-deb.sh: replacing the installed rgost package (CI)" >&2
fi

had_user=0
getent passwd rgost >/dev/null && had_user=1
work=$(mktemp -d /tmp/rgost-deb.XXXXXX)
chmod 755 "$work"
ns=rgdeb$$
pids=()
failures=0
passed=0

cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$ns-srv" 2>/dev/null || true
    ip netns del "$ns-cli" 2>/dev/null || true
    dpkg --purge rgost >/dev/null 2>&1 || true
    if [ "$had_user" = 0 ]; then
        userdel rgost 2>/dev/null || true
        groupdel rgost 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*" >&2; failures=$((failures + 1)); }

echo "== installing $deb"
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; exit 1; }
ok "dpkg -i"

version=$(dpkg-deb -f "$deb" Version)
version=${version%-*}
if out=$(/usr/bin/rgost --version) && [ "$out" = "rgost $version" ]; then ok "/usr/bin/rgost --version: $out"; else fail "/usr/bin/rgost --version said '${out:-}', want 'rgost $version'"; fi

if readelf -S --wide /usr/bin/rgost | grep -q '\.debug_info'; then
    fail "/usr/bin/rgost carries debug info ($(stat -c %s /usr/bin/rgost) bytes)"
else
    ok "/usr/bin/rgost has no debug info ($(stat -c %s /usr/bin/rgost) bytes)"
fi

if dpkg-query -W -f='${Conffiles}\n' rgost | grep -q '^ /etc/rgost/server.yaml '; then ok "/etc/rgost/server.yaml is a conffile"; else fail "/etc/rgost/server.yaml is not a conffile"; fi
if getent passwd rgost >/dev/null; then ok "user rgost exists"; else fail "no user rgost after install"; fi

mapfile -t units < <(dpkg -L rgost | grep -E '/systemd/system/rgost@?\.service$')
[ "${#units[@]}" -eq 2 ] || { fail "want rgost.service and rgost@.service, the package has: ${units[*]:-none}"; exit 1; }

# The value of KEY= in unit file $1 (the last one wins, as in systemd).
unit_value() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

# setpriv options for the User=, AmbientCapabilities= and NoNewPrivileges= of unit $1.
as_unit() {
    local unit=$1 user caps list="" c
    user=$(unit_value "$unit" User)
    caps=$(unit_value "$unit" AmbientCapabilities)
    for c in $caps; do
        c=${c#CAP_}
        list+=",+${c,,}"
    done
    echo "--reuid=${user:-root} --regid=${user:-root} --init-groups"
    echo "--inh-caps=-all$list --ambient-caps=-all$list --bounding-set=-all$list"
    [ "$(unit_value "$unit" NoNewPrivileges)" = yes ] && echo "--no-new-privs"
}

# ExecStart= of unit $1 as words, with %i = $2 and the -C file replaced by $3
# (empty: kept). One line, no continuation, no specifiers but %i and %%.
exec_start() {
    local unit=$1 instance=$2 config=$3 line w out=() next_is_config=0
    line=$(unit_value "$unit" ExecStart)
    [ -n "$line" ] || { echo "no ExecStart= in $unit" >&2; return 1; }
    case $line in *\\) echo "ExecStart= continues on the next line in $unit" >&2; return 1 ;; esac
    line=${line//%i/$instance}
    line=${line//%%/%}
    case $line in *%*) echo "ExecStart= has a specifier this test does not know: $line" >&2; return 1 ;; esac
    for w in $line; do
        if [ "$next_is_config" = 1 ] && [ -n "$config" ]; then w=$config; fi
        next_is_config=0
        [ "$w" = -C ] && next_is_config=1
        out+=("$w")
    done
    printf '%s\n' "${out[@]}"
}

# The file that ExecStart= of unit $1 reads with -C (after %i = $2).
config_of() { exec_start "$1" "$2" "" | sed -n '/^-C$/{n;p}'; }

has_check=0
/usr/bin/rgost --help | grep -q -- '--check' && has_check=1

ip netns add "$ns-srv"
ip netns add "$ns-cli"
ip -n "$ns-srv" link set lo up
ip -n "$ns-cli" link set lo up

for unit in "${units[@]}"; do
    name=$(basename "$unit")
    echo "== $name"
    instance=""
    [[ $name == *@.service ]] && instance=host-1

    if command -v systemd-analyze >/dev/null; then
        # A template is verified as an instance of it.
        copy=$work/verify/${name/@./@$instance.}
        mkdir -p "$work/verify"
        cp "$unit" "$copy"
        if systemd-analyze verify "$copy" >"$work/verify.log" 2>&1 && ! grep -q "$(basename "$copy")" "$work/verify.log"; then
            ok "$name: systemd-analyze verify"
        else
            fail "$name: systemd-analyze verify: $(cat "$work/verify.log")"
        fi
    else
        echo "skipped: systemd-analyze is not installed"
    fi

    read -r -a priv <<<"$(as_unit "$unit" | tr '\n' ' ')"
    config=$(config_of "$unit" "$instance")
    [ -n "$config" ] || { fail "$name: ExecStart= names no -C file"; continue; }
    # The unit's own config where the package installs it, else an example
    # (the client's /etc/rgost/host-1.yaml is the administrator's to write).
    if [ -f "$config" ]; then example=""; else example=/usr/share/doc/rgost/examples/$(basename "$config"); fi
    [ -z "$example" ] || [ -f "$example" ] || { fail "$name: neither $config nor an example $example is installed"; continue; }
    mapfile -t argv < <(exec_start "$unit" "$instance" "$example")
    [ "${argv[0]}" = /usr/bin/rgost ] || fail "$name: ExecStart= runs ${argv[0]}, not /usr/bin/rgost"

    if [ "$has_check" = 1 ]; then
        if setpriv "${priv[@]}" "${argv[@]}" --check >"$work/check.log" 2>&1; then
            ok "$name: '${argv[*]} --check' as $(unit_value "$unit" User)"
        else
            fail "$name: '${argv[*]} --check' as $(unit_value "$unit" User): $(cat "$work/check.log")"
        fi
    else
        echo "skipped: this rgost has no --check; ExecStart's binary runs with --version instead"
        setpriv "${priv[@]}" "${argv[0]}" --version >/dev/null && ok "$name: ${argv[0]} --version as $(unit_value "$unit" User)" ||
            fail "$name: ${argv[0]} --version as $(unit_value "$unit" User)"
    fi

    # The unit's ExecStart=, its user and only its capabilities, in a
    # namespace of its own: does it come up?
    log=$work/$name.log
    if [ -z "$instance" ]; then
        # The server on a port below 1024: needs the unit's CAP_NET_BIND_SERVICE.
        sed 's/^\( *addr:\) :8443$/\1 :443/' /etc/rgost/server.yaml >"$work/server.yaml"
        grep -q 'addr: :443$' "$work/server.yaml" || { fail "$name: /etc/rgost/server.yaml no longer listens on :8443"; continue; }
        chmod 644 "$work/server.yaml"
        mapfile -t argv < <(exec_start "$unit" "" "$work/server.yaml")
        ip netns exec "$ns-srv" setpriv "${priv[@]}" "${argv[@]}" >"$log" 2>&1 & pids+=($!)
        want="router service listening"
    else
        # The client with its TUN device. /dev/net/tun is mode 0666 on a
        # Debian host (udev) but may be 0600 in a container: the test mounts
        # a 0666 node of the same device over it, in a mount namespace of its own.
        sed 's/SERVER:8443/127.0.0.1:8443/' "$example" >"$work/host-1.yaml"
        chmod 644 "$work/host-1.yaml"
        mapfile -t argv < <(exec_start "$unit" "$instance" "$work/host-1.yaml")
        ip netns exec "$ns-cli" unshare -m sh -c '
            mknod -m 666 "$1/tun" c 10 200 && mount --bind "$1/tun" /dev/net/tun && shift && exec setpriv "$@"' \
            sh "$work" "${priv[@]}" "${argv[@]}" >"$log" 2>&1 & pids+=($!)
        want="TUN device up"
    fi
    up=0
    for _ in $(seq 100); do
        grep -q "$want" "$log" && { up=1; break; }
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$up" = 1 ] && [ -n "$instance" ]; then
        # The device, its address and its route, made by the rgost user with CAP_NET_ADMIN alone.
        ip -n "$ns-cli" -o addr show | grep -q '192.168.123.1/24' || up=0
        ip -n "$ns-cli" route show | grep -q '^192.168.200.0/24 dev tun' || up=0
    fi
    if [ "$up" = 1 ]; then
        ok "$name: ExecStart= as $(unit_value "$unit" User) with $(unit_value "$unit" AmbientCapabilities) comes up ($want)"
    else
        fail "$name: ExecStart= as $(unit_value "$unit" User) with $(unit_value "$unit" AmbientCapabilities) did not come up: $(cat "$log")"
    fi
    kill "${pids[-1]}" 2>/dev/null || true
    wait "${pids[-1]}" 2>/dev/null || true
done

echo "packaging: $passed passed, $failures failed"
[ "$failures" = 0 ]
