// Package chaos owns drover's crash and failover tests: real `drover
// server` processes, killed with SIGKILL at the server's named failpoints
// (DROVER_FAILPOINTS) or as the leader of several servers sharing one
// PostgreSQL, restarted on the same store, with real agents (sim driver)
// whose ledgers prove that no step ran twice, no node was skipped and no
// cap was exceeded. The package has no code outside its tests.
package chaos
