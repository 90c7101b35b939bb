#!/bin/sh
# drover-agent pre-remove.
#   deb prerm:  remove | upgrade NEW-VERSION | failed-upgrade ... | deconfigure
#   rpm %preun: 0 (erase) or 1 (upgrade)
# Only a removal stops the agent; an upgrade leaves it running (see
# postinst). The unit's KillMode=process lets a package manager the agent
# started finish. Nothing under /var/lib/drover is touched.
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now drover-agent.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
