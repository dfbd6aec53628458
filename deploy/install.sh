#!/usr/bin/env bash
# Installs pihub as a systemd service on Raspberry Pi OS / Debian, from this clone:
#
#   sudo deploy/install.sh               install or upgrade, enable and (re)start
#   sudo deploy/install.sh --uninstall   stop, disable, remove the unit and /opt/pihub
#                                        (keeps /etc/pihub and the spool in /var/lib/pihub)
#   sudo deploy/install.sh --uninstall --purge   …and those, the credentials and the user
#
# Options:
#   --root DIR     lay the files down under DIR instead of / (an image, a test). Users are
#                  created with useradd --prefix when DIR/etc/passwd exists; systemctl only
#                  enables (systemctl --root); nothing is started.
#   --no-start     enable the unit but neither reload systemd nor start it
#   --no-pip       create the virtualenv but only print the pip command (offline tests)
#   --pi / --no-pi install the pin library (pihub[pi], lgpio) or not; default: on a Pi
#   --python EXE   the Python (3.11+) to build the virtualenv from; default python3
#
# Idempotent: running it twice leaves the same files. config.ini is written only when
# missing; an existing one is never touched.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=""
START=1
PIP=1
PI=auto
PYTHON=python3
UNINSTALL=0
PURGE=0

USER_NAME=pihub
DEVICE_GROUPS=(gpio i2c spi)
PREFIX=/opt/pihub
UNIT=pihub.service

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT="$(cd "$2" && pwd)"; shift ;;
    --root=*) ROOT="$(cd "${1#--root=}" && pwd)" ;;
    --no-start) START=0 ;;
    --no-pip) PIP=0 ;;
    --pi) PI=1 ;;
    --no-pi) PI=0 ;;
    --python) [ $# -ge 2 ] || die "--python needs a program"; PYTHON="$2"; shift ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
  shift
done
if [ "$ROOT" = "/" ]; then ROOT=""; fi
if [ -n "$ROOT" ]; then START=0; fi
if [ "$PURGE" -eq 1 ] && [ "$UNINSTALL" -eq 0 ]; then die "--purge goes with --uninstall"; fi
[ "$(id -u)" -eq 0 ] || die "run me as root (sudo $0)"

ETC="$ROOT/etc/pihub"
STATE="$ROOT/var/lib/pihub"
CREDSTORE="$ROOT/etc/credstore"
UNIT_FILE="$ROOT/etc/systemd/system/$UNIT"
VENV="$ROOT$PREFIX/venv"

# systemd is running (not a chroot, an image or a container without it).
systemd_live() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }
systemctl_() { if [ -n "$ROOT" ]; then systemctl --root="$ROOT" "$@"; else systemctl "$@"; fi; }

# Account lookups read the target's files, so --root works on an image's /etc.
has_passwd() { [ -f "$ROOT/etc/passwd" ] && [ -f "$ROOT/etc/group" ]; }
user_exists() { grep -q "^$1:" "$ROOT/etc/passwd"; }
group_exists() { grep -q "^$1:" "$ROOT/etc/group"; }
id_of() { awk -F: -v n="$2" '$1 == n { print $3 }' "$ROOT/etc/$1"; }
shadow_opts() { if [ -n "$ROOT" ]; then echo "--prefix $ROOT"; fi; }

# --- uninstall ---------------------------------------------------------------------

uninstall() {
  if [ -f "$UNIT_FILE" ] || [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/$UNIT" ]; then
    if systemd_live; then
      systemctl disable --now "$UNIT" || true
    else
      systemctl_ disable "$UNIT" || true
    fi
  fi
  rm -f "$UNIT_FILE"
  if systemd_live; then systemctl daemon-reload; fi
  rm -rf "$ROOT$PREFIX"
  if [ "$PURGE" -eq 1 ]; then
    # The spool may hold readings the broker never acknowledged: gone with --purge.
    rm -rf "$ETC" "$STATE" "$ROOT/etc/systemd/system/$UNIT.d"
    rm -f "$CREDSTORE/pihub.mqtt_password" "$CREDSTORE/pihub.mqtt_key"
    if has_passwd && user_exists "$USER_NAME"; then
      # shellcheck disable=SC2046
      userdel $(shadow_opts) "$USER_NAME" || true
      if group_exists "$USER_NAME"; then
        # shellcheck disable=SC2046
        groupdel $(shadow_opts) "$USER_NAME" || true
      fi
    fi
    say "removed pihub, its config, its spool and its user"
  else
    say "removed pihub; kept $ETC and $STATE (the spool) — --purge removes them too"
  fi
}

if [ "$UNINSTALL" -eq 1 ]; then
  uninstall
  exit 0
fi

# --- install -----------------------------------------------------------------------

[ -f "$SRC/pyproject.toml" ] && [ -f "$SRC/deploy/$UNIT" ] || die "run me from a pihub clone"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "pihub needs Python 3.11 or newer as $PYTHON"

if [ "$PI" = auto ]; then
  PI=0
  if grep -qs "Raspberry Pi" "$ROOT/proc/device-tree/model" "/proc/device-tree/model"; then PI=1; fi
fi

# 1. The user and its device groups. Raspberry Pi OS has gpio, i2c and spi (with udev
#    rules giving them the devices); elsewhere they are created so the unit still starts.
if has_passwd; then
  for group in "${DEVICE_GROUPS[@]}"; do
    if ! group_exists "$group"; then
      # shellcheck disable=SC2046
      groupadd $(shadow_opts) --system "$group"
      say "created group $group"
    fi
  done
  groups_csv="$(IFS=,; echo "${DEVICE_GROUPS[*]}")"
  if user_exists "$USER_NAME"; then
    # shellcheck disable=SC2046
    usermod $(shadow_opts) --append --groups "$groups_csv" "$USER_NAME"
  else
    # shellcheck disable=SC2046
    useradd $(shadow_opts) --system --user-group --groups "$groups_csv" \
      --home-dir /var/lib/pihub --no-create-home --shell /usr/sbin/nologin \
      --comment "pihub sensor hub" "$USER_NAME"
    say "created user $USER_NAME in ${groups_csv}"
  fi
  uid="$(id_of passwd "$USER_NAME")"
  gid="$(id_of group "$USER_NAME")"
else
  say "no $ROOT/etc/passwd: not creating the $USER_NAME user; files stay root's"
  uid=0
  gid=0
fi

# 2. Directories. The service's own copies are made by systemd (StateDirectory=,
#    ConfigurationDirectory=); making them here gives the admin somewhere to put files
#    before the first start.
install -d -m 0755 "$ROOT$PREFIX" "$ROOT/etc/systemd/system"
install -d -m 0755 -o 0 -g 0 "$ETC"
install -d -m 0700 -o "$uid" -g "$gid" "$STATE"
install -d -m 0700 -o 0 -g 0 "$CREDSTORE"

# 3. The virtualenv, pihub in it. A venv of its own keeps pip away from apt's Python.
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || die "cannot create a virtualenv: sudo apt install python3-venv"
fi
spec="$SRC"
if [ "$PI" -eq 1 ]; then spec="$SRC[pi]"; fi
pip_cmd=("$VENV/bin/python" -m pip install --quiet --upgrade --upgrade-strategy only-if-needed "$spec")
if [ "$PIP" -eq 1 ]; then
  say "installing pihub into $PREFIX/venv…"
  "${pip_cmd[@]}"
else
  say "would run: ${pip_cmd[*]}"
fi
install -d -m 0755 "$ROOT$PREFIX/share"
install -m 0644 "$SRC/deploy/$UNIT" "$ROOT$PREFIX/share/$UNIT"
if [ -f "$SRC/docs/DEPLOY.md" ]; then
  install -m 0644 "$SRC/docs/DEPLOY.md" "$ROOT$PREFIX/share/DEPLOY.md"
fi

# 4. config.ini: a starter that runs on any Pi, written only when there is none.
if [ ! -e "$ETC/config.ini" ]; then
  tmp="$(mktemp "$ETC/.config.ini.XXXXXX")"
  cat >"$tmp" <<'INI'
# pihub configuration. Check it with: pihub check -c /etc/pihub/config.ini
# Apply a change with: sudo systemctl reload pihub   (a bad file keeps the old config)
# Every key and sensor type: README.md in the pihub repository; docs/DEPLOY.md for the Pi.

[hub]
# Default: the host name. Letters, digits, _ and -.
;id = livingroom
state_dir = /var/lib/pihub
;pin_factory = auto

[mqtt]
host = localhost
port = 1883
;username = livingroom
# The password is not written here: put it in /etc/credstore/pihub.mqtt_password
# (root-only, mode 0600); systemd hands it to pihub as a credential.
;tls = false
;ca_certs = /etc/pihub/ca.pem
;certfile = /etc/pihub/client.pem
# A client key arrives as a credential too: /etc/credstore/pihub.mqtt_key
;keyfile = /run/credentials/pihub.service/mqtt_key

# Sensors every Pi has.
[sensor:cpu]
type = cpu_temperature
interval = 30

[sensor:load]
type = load_average
interval = 30

[sensor:disk]
type = disk_usage
interval = 300

# Wired sensors: uncomment and adapt.
;[sensor:door]
;type = digital
;pin = GPIO17
;
;[sensor:attic]
;type = ds18b20
;device = 28-0316a2c3b4ff
;
;[sensor:climate]
;type = bme280
;bus = 1
;address = 0x76
INI
  chown "0:$gid" "$tmp"
  chmod 0640 "$tmp"
  mv "$tmp" "$ETC/config.ini"
  say "wrote a starter $ETC/config.ini"
else
  say "kept the existing $ETC/config.ini"
fi

# 5. The unit. Local changes go in a drop-in (systemctl edit pihub), which survives this.
install -m 0644 "$SRC/deploy/$UNIT" "$UNIT_FILE"
systemctl_ enable "$UNIT" >/dev/null 2>&1 || systemctl_ enable "$UNIT"

if [ "$START" -eq 0 ]; then
  say "installed and enabled; not started (--no-start or --root)"
  exit 0
fi
if ! systemd_live; then
  say "installed and enabled; systemd is not running here, so not started"
  exit 0
fi
systemctl daemon-reload
# A bad config.ini would exit 78 and stay down: say so now rather than in the journal.
if [ "$PIP" -eq 1 ] && ! "$VENV/bin/pihub" check -c /etc/pihub/config.ini >/dev/null; then
  say "/etc/pihub/config.ini has problems (above); fix them, then: systemctl restart pihub"
  say "(a keyfile in /run/credentials/pihub.service exists only inside the running service:"
  say " if that is the only problem, systemctl restart pihub)"
  exit 1
fi
systemctl restart "$UNIT"
say "pihub is running: systemctl status pihub; journalctl -u pihub -f"
