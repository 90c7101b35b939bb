#!/bin/sh
# drover (server) post-remove. Only `dpkg --purge` deletes the server's
# data (/var/lib/drover-server: its database, CA and audit key) and its
# user; `dpkg -r`, `rpm -e` and every upgrade keep them.
#   deb postrm: remove | purge | upgrade ...; rpm %postun: 0 or 1
set -e
if [ "$1" = purge ]; then
	rm -rf /var/lib/drover-server
	if getent passwd drover >/dev/null; then
		userdel drover >/dev/null 2>&1 || true
	fi
	rmdir /etc/drover 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
