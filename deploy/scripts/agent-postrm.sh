#!/bin/sh
# drover-agent post-remove.
#   deb postrm:  remove | purge | upgrade NEW-VERSION | abort-* | ...
#   rpm %postun: 0 (erase) or 1 (upgrade)
# Only `dpkg --purge` (apt purge) deletes the agent's state: its journal,
# key and certificate under /var/lib/drover. `dpkg -r`, `rpm -e` and every
# upgrade keep them; rpm has no purge, remove the directory by hand.
set -e
if [ "$1" = purge ]; then
	rm -rf /var/lib/drover
	rmdir /etc/drover 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
