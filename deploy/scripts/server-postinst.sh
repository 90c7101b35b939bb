#!/bin/sh
# drover (server) post-install. One script for both formats:
#   deb postinst: configure [OLD-VERSION] (OLD-VERSION set on upgrade)
#   rpm %post:    1 (install) or 2+ (upgrade)
# Creates the system user drover and the data directory; an upgrade
# restarts a running server (try-restart: a stopped one stays stopped).
set -e
case "$1" in
configure) upgrade=${2:+yes} ;;
1) upgrade= ;;
[0-9]*) upgrade=yes ;;
*) exit 0 ;;
esac
if ! getent passwd drover >/dev/null; then
	nologin=$(command -v nologin || echo /usr/sbin/nologin)
	useradd --system --user-group --home-dir /var/lib/drover-server --no-create-home \
		--shell "$nologin" --comment "drover server" drover
fi
install -d -m 0700 -o drover -g drover /var/lib/drover-server
# The server's config holds the users' tokens: readable by drover only.
if [ -f /etc/drover/server.yaml ]; then
	chown root:drover /etc/drover/server.yaml
	chmod 0640 /etc/drover/server.yaml
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ -z "$upgrade" ]; then
		systemctl enable drover.service >/dev/null 2>&1 || true
		echo "drover: add a user to /etc/drover/server.yaml, then: systemctl start drover"
	else
		systemctl try-restart drover.service || true
	fi
fi
exit 0
