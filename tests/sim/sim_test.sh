#!/bin/bash
# Runs p2psim on a few hundred nodes and checks its JSON.
# usage: sim_test.sh PATH/TO/p2psim CASE
# CASE: basic | clients | churn | determinism | badflags | reach
set -u
SIM=$1
CASE=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fail() {
	echo "FAIL ($CASE): $*" >&2
	exit 1
}

# check FILE PYTHON-EXPRESSION...: each expression over j (the JSON) must hold.
check() {
	local file=$1
	shift
	python3 - "$file" "$@" <<'PY' || fail "JSON check failed: $(cat "$file")"
import json, sys
j = json.load(open(sys.argv[1]))
for expr in sys.argv[2:]:
    if not eval(expr):
        print("not true:", expr, file=sys.stderr)
        sys.exit(1)
    print("ok:", expr)
PY
}

run() {
	local out=$1
	shift
	"$SIM" "$@" >"$out" 2>"$TMP/stderr" || fail "p2psim $* exited $?: $(cat "$TMP/stderr")"
}

case $CASE in
basic)
	run "$TMP/o.json" --nodes 300 --lookups 200 --seed 11
	check "$TMP/o.json" \
		'j["nodes"] == 300 and j["lookups"] == 200' \
		'j["success_rate"] == 1.0' \
		'1 <= j["hops"]["p50"] <= j["hops"]["p95"] <= j["hops"]["max"] <= 20' \
		'j["msgs_per_lookup"] > 0' \
		'j["routed"]["sent"] == 200 and j["routed"]["delivered_rate"] >= 0.99' \
		'j["routed"]["hops_p50"] >= 1' \
		'j["lookup"]["precision"] >= 0.95' \
		'j["net"]["decode_errors"] == 0 and j["net"]["send_no_link"] == 0' \
		'j["net"]["dials_wrong_addr"] == 0 and j["net"]["dials_unknown"] == 0' \
		'j["net"]["dials_self"] == 0' \
		'j["wall_s"] > 0 and j["rss_mb"] > 0 and j["virtual_s"] > 0'
	;;
reach)
	# The daemon's reach core over the model: every pair gets a link
	# (direct, punched or relayed) when some relay can reach both, and
	# every way is used. Pairs with an endpoint-dependent end are relayed.
	run "$TMP/o.json" --nodes 400 --lookups 10 --clients 0.5 --pairs 120 \
		--dependent 0.3 --settle-s 30 --seed 13
	check "$TMP/o.json" \
		'j["reach"]["pairs"] == 120' \
		'j["reach"]["failed_reachable"] == 0' \
		'j["reach"]["linked"] == j["reach"]["reachable_pairs"]' \
		'j["reach"]["method_share"]["dial"] > 0' \
		'j["reach"]["method_share"]["punch"] > 0' \
		'j["reach"]["method_share"]["relay"] > 0' \
		'j["reach"]["dependent_linked"] == j["reach"]["dependent_pairs"] > 0' \
		'j["reach"]["relay_asks"] >= j["reach"]["method_share"]["relay"] * j["reach"]["linked"] - 0.5' \
		'j["reach"]["max_circuits_on_one_node"] >= 1' \
		'j["reach"]["relay_candidates"] == "lookup+links"' \
		'j["reach"]["relay_finding"]["refused"] == 0' \
		'j["reach"]["relay_finding"]["dials"] > 0' \
		'j["reach"]["relay_finding"]["msgs"] == j["reach"]["relay_asks"]'
	# Relays on purpose (the default): the target's nearest servers are
	# asked first, so no relay refuses; those whose lookup link has
	# closed by the time the punch failed (8 s) are dialled first.
	# Relays asked while the punch runs: relayed pairs link sooner.
	run "$TMP/p.json" --nodes 400 --lookups 10 --clients 0.5 --pairs 120 \
		--dependent 0.3 --settle-s 30 --seed 13 --relay-with-punch
	check "$TMP/p.json" \
		'j["reach"]["failed_reachable"] == 0' \
		'j["reach"]["relay_with_punch"]'
	python3 - "$TMP/o.json" "$TMP/p.json" <<'PY' || fail "relays in parallel are not faster"
import json, sys
a, b = (json.load(open(f))["reach"]["ms"]["p95"] for f in sys.argv[1:])
print("p95 ms: after the punch %d, in parallel %d" % (a, b))
sys.exit(0 if b < a else 1)
PY
	;;
clients)
	run "$TMP/o.json" --nodes 400 --lookups 200 --clients 0.5 --seed 12
	check "$TMP/o.json" \
		'150 <= j["client_nodes"] <= 250' \
		'j["routed"]["delivered_rate"] >= 0.99' \
		'j["success_rate"] >= 0.99' \
		'j["net"]["decode_errors"] == 0'
	;;
churn)
	run "$TMP/o.json" --nodes 400 --lookups 200 --churn 0.2 --seed 13
	check "$TMP/o.json" \
		'j["overlay"]["live"] == 320' \
		'j["lookup"]["success_rate_before_churn"] == 1.0' \
		'j["lookup"]["success_rate_after_churn"] >= 0.9' \
		'j["routed"]["delivered_rate"] >= 0.9'
	;;
determinism)
	run "$TMP/a.json" --nodes 200 --lookups 100 --clients 0.3 --churn 0.1 --loss 0.01 --seed 99
	run "$TMP/b.json" --nodes 200 --lookups 100 --clients 0.3 --churn 0.1 --loss 0.01 --seed 99
	run "$TMP/c.json" --nodes 200 --lookups 100 --clients 0.3 --churn 0.1 --loss 0.01 --seed 100
	python3 - "$TMP/a.json" "$TMP/b.json" "$TMP/c.json" <<'PY' || fail "outputs differ"
import json, sys
a, b, c = (json.load(open(f)) for f in sys.argv[1:])
for j in (a, b, c):
    del j["wall_s"], j["rss_mb"], j["cpu_s"]
assert a == b, "same seed, different output"
c["seed"] = a["seed"]
assert a != c, "another seed gave the very same run"
print("ok: same seed, same output; other seed, other output")
PY
	;;
badflags)
	expect2() {
		"$SIM" "$@" >"$TMP/out" 2>"$TMP/err"
		local rc=$?
		[ $rc -eq 2 ] || fail "p2psim $* exited $rc, want 2"
		[ -s "$TMP/err" ] || fail "p2psim $*: no message on stderr"
		[ ! -s "$TMP/out" ] || fail "p2psim $*: printed to stdout"
		echo "ok: $* -> 2: $(head -n1 "$TMP/err")"
	}
	expect2
	expect2 --nodes 100
	expect2 --lookups 10
	expect2 --nodes abc --lookups 10
	expect2 --nodes 1 --lookups 10
	expect2 --nodes -5 --lookups 10
	expect2 --nodes 10x --lookups 10
	expect2 --nodes 99999999999 --lookups 10
	expect2 --nodes 100 --lookups 10 --churn 1.5
	expect2 --nodes 100 --lookups 10 --churn nan
	expect2 --nodes 100 --lookups 10 --clients -0.1
	expect2 --nodes 100 --lookups 10 --loss 1
	expect2 --nodes 100 --lookups 10 --latency-ms 0
	expect2 --nodes 100 --lookups 10 --seed
	expect2 --nodes 100 --lookups 10 --bogus
	expect2 --nodes 100 --lookups 10 extra
	"$SIM" --help >"$TMP/out" || fail "--help exited $?"
	grep -q -- --nodes "$TMP/out" || fail "--help does not mention --nodes"
	;;
*)
	fail "unknown case"
	;;
esac
echo "PASS ($CASE)"
