// Package release builds what `make release` publishes: the .deb and
// .rpm packages of drover-agent and drover (the server) for linux/amd64
// and linux/arm64, made with nfpm (github.com/goreleaser/nfpm/v2, as a
// library: no fpm, Ruby or rpmbuild needed), a SHA256SUMS file of every
// artifact, and a manifest (manifest.json) signed with the release's
// ed25519 key (manifest.json.sig), which `release verify` and
// `openssl pkeyutl -verify -rawin` check.
//
// The packages' contents come from deploy/: the systemd units
// (deploy/systemd), the default config files (deploy/etc, installed as
// /etc/drover/agent.yaml and server.yaml and marked as config files, so
// an upgrade never overwrites an edited one), and the maintainer scripts
// (deploy/scripts, one per hook for both formats). docs/packages.md says
// what each package installs and what upgrades and removals keep.
//
// scripts/release is its command line (go run ./scripts/release).
package release
