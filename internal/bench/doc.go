// Package bench owns drover's end-to-end benchmarks: a rolling no-op
// rollout across real agent processes, many lightweight simulated agents
// long-polling one server, and REST API latency under that load. It
// starts servers and agents as processes of the drover binary (so what it
// measures is what ships), reads their cost from /proc and /metrics, and
// returns plain result structs; the `drover bench` command prints them.
// Everything stays on loopback.
package bench
