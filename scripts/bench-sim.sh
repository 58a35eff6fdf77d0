#!/bin/sh
# The simulator's numbers next to their goals: optimistic against
# pessimistic offers (K = 1, 2, 4, 8) on one generated workload, the
# issue's large workload (10,000 agents, 1,000 sessions, 1,000,000 tasks),
# the multi-tenant example and the Alibaba trace replay. Run by make bench.
set -eu
CAISSON=${CAISSON:-bin/caisson}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
field() { python3 -c "import json,sys; r=json.load(sys.stdin); print($1)"; }
echo "offer fan-out on --agents 200 --sessions 100 --tasks 20000 --duration 10m:"
printf '%-4s %12s %14s %10s %12s\n' K placed placements/s conflicts p99-step-us
for k in 1 2 4 8; do
	"$CAISSON" sim --agents 200 --sessions 100 --tasks 20000 --duration 10m --offer-fanout "$k" --format json >"$tmp"
	field "'%-4d %12d %14.0f %9.0f%% %12.1f' % ($k, r['tasks_placed'], r['placements_per_sec'], 100*r['offers']['conflict_rate'], r['decision_latency_us']['p99'])" <"$tmp"
done
"$CAISSON" sim --agents 10000 --sessions 1000 --tasks 1000000 --format json >"$tmp"
field "'--agents 10000 --sessions 1000 --tasks 1000000: %.0f placements/s (goal 50,000), p99 step %.1f us (goal < 1,000), p999 %.0f us, peak RSS %.0f MiB' % (r['placements_per_sec'], r['decision_latency_us']['p99'], r['decision_latency_us']['p999'], r['peak_rss_bytes']/2**20)" <"$tmp"
"$CAISSON" sim examples/sim-multitenant.yaml --format json >"$tmp"
field "'multi-tenant example: %.0f placements/s (goal 50,000), p99 step %.1f us (goal < 1,000)' % (r['placements_per_sec'], r['decision_latency_us']['p99'])" <"$tmp"
"$CAISSON" sim --trace openb --format json >"$tmp"
field "'openb trace replay: %d pods in %.1f s (goal: seconds), p99 step %.1f us' % (r['tasks_placed'], r['wall_seconds'], r['decision_latency_us']['p99'])" <"$tmp"
