// Package artifact owns drover's signed artifacts (scripts, kernel live
// patches, packages that come from no OS repository), delivered with The
// Update Framework (TUF, github.com/theupdateframework/go-tuf/v2).
//
// Three parties, three halves of this package:
//
//   - The operator builds and signs a repository offline with Repo
//     (`drover artifact init|add|remove|sign|list`). Its directory holds
//     only public files, metadata/ and targets/; the four ed25519 role keys
//     (root, targets, snapshot, timestamp) live in a separate keys
//     directory that never leaves the operator's machine.
//   - The server publishes a copy of that directory read-only
//     (/v1/artifacts/metadata/FILE and /v1/artifacts/targets/FILE). It
//     holds no key and cannot make an agent run anything: whatever it
//     serves is checked against signatures it cannot produce.
//   - The agent runs artifacts only through Verifier, a go-tuf client
//     whose trust starts at a root.json pinned on the node. Verify refreshes
//     the metadata (root rotation, timestamp, snapshot, targets; with the
//     rollback, freeze, mix-and-match and threshold checks of the TUF
//     client workflow), downloads the named target, checks its length and
//     hashes, and only then returns a local path to run.
//
// The agent's trusted state (its metadata cache) moves forward all at
// once: a Verify that is refused for any reason leaves it exactly as it
// was, so a refused update can never be half trusted.
//
// Repositories use consistent snapshots: metadata is published as
// N.ROLE.json (timestamp.json excepted) and targets as SHA256.NAME, and
// timestamp.json is written last, so a client reading while the operator
// publishes sees either the old or the new repository, never a mixture.
package artifact
