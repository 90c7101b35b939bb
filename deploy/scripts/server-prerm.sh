#!/bin/sh
# drover (server) pre-remove: a removal stops the server; an upgrade
# leaves it running until postinst restarts it.
#   deb prerm: remove | upgrade ...; rpm %preun: 0 (erase) or 1 (upgrade)
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now drover.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
