#!/usr/bin/env bash
# Install (or upgrade) radiod on a Raspberry Pi node from this checkout: `sudo systemd/install.sh` or `make install`.
#
#   /opt/radiod                  a virtualenv with radiod (it sees apt's python3-lgpio: --system-site-packages)
#   /usr/share/radiod/           firmware_profiles/, voices/ and hub/, where an installed radiod looks for them
#   /usr/local/bin/radiod        a symlink to /opt/radiod/bin/radiod, so `radiod` is on every user's PATH
#   /etc/radiod/config.yaml      from config.example.yaml, only if there is none (never overwritten), 0640 root:radiod
#   /etc/systemd/system/radiod.service, enabled; restarted on an upgrade, not started on a first install
#   user radiod                  system user in the gpio and audio groups; its state is /var/lib/radiod
#
# DESTDIR=/some/dir puts the files under that directory only (no apt, no user, no venv, no systemctl): for
# packaging, and for the tests.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=/opt/radiod
SHARE=/usr/share/radiod
CONFIG=/etc/radiod/config.yaml
LINK=/usr/local/bin/radiod
APT_PACKAGES="espeak-ng libportaudio2 python3-venv"
staging() { [ -n "$DESTDIR" ]; }

if ! staging && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (sudo systemd/install.sh, or make install)" >&2
  exit 1
fi

if ! staging; then
  echo "== Debian packages"
  packages=$APT_PACKAGES
  apt-cache show python3-lgpio >/dev/null 2>&1 && packages="$packages python3-lgpio"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages

  echo "== user radiod (groups gpio, audio)"
  getent group gpio >/dev/null || groupadd --system gpio
  if id radiod >/dev/null 2>&1; then
    usermod --append --groups gpio,audio radiod
  else
    useradd --system --user-group --home-dir /var/lib/radiod --no-create-home --shell /usr/sbin/nologin \
      --groups gpio,audio radiod
  fi

  echo "== virtualenv $PREFIX"
  [ -x "$PREFIX/bin/python" ] || python3 -m venv --system-site-packages "$PREFIX"
  "$PREFIX/bin/pip" install -q --upgrade pip
  "$PREFIX/bin/pip" install -q --upgrade "$SRC"
fi

echo "== radiod on PATH: $LINK -> $PREFIX/bin/radiod"
install -d -m 0755 "$DESTDIR$(dirname "$LINK")"
ln -sfn "$PREFIX/bin/radiod" "$DESTDIR$LINK"

echo "== profiles, voices, hub templates, unit, docs"
install -d -m 0755 "$DESTDIR$SHARE/firmware_profiles" "$DESTDIR$SHARE/voices" "$DESTDIR$SHARE/hub" \
  "$DESTDIR$PREFIX/share/doc" "$DESTDIR/etc/systemd/system"
install -m 0644 "$SRC"/firmware_profiles/*.yaml "$DESTDIR$SHARE/firmware_profiles/"
install -m 0644 "$SRC"/hub/*.template "$SRC/hub/README.md" "$DESTDIR$SHARE/hub/"
cp -R "$SRC/voices/." "$DESTDIR$SHARE/voices/"
chmod -R u=rwX,go=rX "$DESTDIR$SHARE/voices"
install -m 0644 "$SRC/systemd/radiod.service" "$DESTDIR/etc/systemd/system/radiod.service"
install -m 0644 "$SRC/docs/technician.md" "$DESTDIR$PREFIX/share/doc/technician.md"

echo "== config $CONFIG"
install -d -m 0750 "$DESTDIR/etc/radiod" "$DESTDIR/etc/radiod/keys"
fresh=no
if [ ! -e "$DESTDIR$CONFIG" ]; then
  fresh=yes
  # The speech cache goes to systemd's CacheDirectory; everything else is the example's.
  sed 's|^\(  cache_dir:\) null  |\1 /var/cache/radiod|' "$SRC/config.example.yaml" > "$DESTDIR$CONFIG"
  chmod 0640 "$DESTDIR$CONFIG"
fi
if ! staging; then
  chown root:radiod /etc/radiod /etc/radiod/keys "$CONFIG"

  echo "== systemd"
  systemctl daemon-reload
  systemctl enable radiod.service
  if [ "$fresh" = yes ]; then
    cat <<EOF

Installed. Before starting, edit $CONFIG: node.id and zones, mqtt (host, prefix, TLS), security.trusted_keys
(copy the hub's public key to /etc/radiod/keys/), gpio.profile (e.g. rpi-relay-hat-2ch) and audio.output
(default for the sound card). Then:
  radiod validate
  systemctl start radiod && radiod health
EOF
  else
    "$PREFIX/bin/radiod" validate --config "$CONFIG"
    systemctl restart radiod.service
    echo "upgraded and restarted; check it with: radiod health"
  fi
fi
