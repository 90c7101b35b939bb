// Package fleettest owns the Debian fleet test: the real `drover server`
// on SQLite and real `drover agent`s with the real apt driver, each in a
// Docker container of a debootstrapped Debian (bullseye, bookworm, trixie),
// updating a test package from a local apt repository that the test builds
// and serves. Rollouts are driven through the REST client (internal/api),
// as the CLI drives them; outcomes are checked inside the containers
// (dpkg-query, apt's history.log, dpkg.log) and in the server's audit log.
//
// The agent channel is production's: the server serves TLS with its
// built-in CA and has no shared agent token; each agent enrols on its
// first start with its own single-use enrolment token (whose labels give
// the node its zone and role) and the CA's pin, then talks mTLS with the
// client certificate it keeps in its state dir.
//
// Every start of a container is a boot of its node as the agent sees it:
// a new boot ID bind-mounted over /proc/sys/kernel/random/boot_id (the
// containers run with CAP_SYS_ADMIN for that mount) and an empty /run.
// The agent's `systemctl reboot` ends the container and Docker's restart
// policy starts it again; reboot_test.go says what is real and what is
// simulated.
//
// The test needs the Docker engine, dpkg-deb and dpkg-scanpackages
// (dpkg-dev) on the host and the images drover-fleet:SUITE that
// scripts/fleet-rootfs.sh builds. It fails, never skips, when one is
// missing. It builds its own binaries: drover (static) and the service it
// rolls out, testdata/testsvc (dynamically linked: it needs
// libsmartcols.so.1, which the Go linker records without a C compiler;
// see testdata/testsvc/link_linux.go). Everything it starts (containers, the
// network, the server, the repository) is removed when it ends, pass or
// fail.
//
// There is no non-test code: this file only documents the package.
package fleettest
