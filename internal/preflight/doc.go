// Package preflight checks a valid plan against what it will meet,
// before anything is touched: the nodes it targets (the maintenance
// windows their labels name, what their agents are configured to run)
// and the server's metrics source (wave gates' PromQL queries, rendered
// as the gate evaluator renders them and parsed by Prometheus's own
// parser). `drover plan validate --inventory` and the server's validate,
// dry run and create run the same checks; every problem is a
// plan.Error at FILE:LINE:COL. It also lists every command a plan can
// cause on a node, for the rollout's audit entry, and evaluates a plan's
// compatibility matrix on nodes (Compatibility), for the node pre-flight
// the agents run (driver.Preflight, the server's nodepreflight.go).
//
// It links Prometheus's PromQL parser: the agent binary must not import
// it (cmd/drover-agent's deps test).
package preflight
