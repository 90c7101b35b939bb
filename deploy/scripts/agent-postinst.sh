#!/bin/sh
# drover-agent post-install. One script for both formats:
#   deb postinst: configure [OLD-VERSION] (OLD-VERSION set on upgrade)
#   rpm %post:    1 (install) or 2+ (upgrade)
# The running agent is never restarted here: a step of its own may be
# running this very upgrade (apt-get under the agent, dpkg under apt-get,
# this script under dpkg). The agent notices that its program was
# replaced and re-executes it as soon as no step runs.
set -e
case "$1" in
configure) upgrade=${2:+yes} ;;
1) upgrade= ;;
[0-9]*) upgrade=yes ;;
*) exit 0 ;; # abort-upgrade, abort-remove...: nothing was changed
esac
# The journal, key and certificate; systemd's StateDirectory= makes it too.
install -d -m 0700 /var/lib/drover
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ -z "$upgrade" ]; then
		systemctl enable drover-agent.service >/dev/null 2>&1 || true
		echo "drover-agent: edit /etc/drover/agent.yaml (server, enroll-token, ca-hash), then: systemctl start drover-agent"
	fi
fi
exit 0
