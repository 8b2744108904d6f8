#!/usr/bin/env bash
# Where the broker's time goes, per delivery, with the plugin and without: runs one fan-out phase
# against a fresh plugin broker and a fresh plain one, records each broker with
# `perf record -e cpu-clock -g` during the measuring window, and prints the costliest symbols as
# nanoseconds of broker CPU per delivery, side by side.
#
#   tests/bench/profile.sh [--users 1000 --members 50 --qos 1 --w 16 --window 8] [--room]
#                          [--build-dir DIR]
#
# --room: the plugin's members read their groups on chat/room/<gid> (DESIGN.md §11).
#
# Results: <build>/bench/profile/{plugin,plain}.perf, profile.md. Needs perf (linux-perf).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build
USERS=1000 MEMBERS=50 QOS=1 W=16 WINDOW=8 WARMUP=3 TOP=30 ROOM=""
while [ $# -gt 0 ]; do
	case "$1" in
	--users) USERS=$2; shift ;;
	--members) MEMBERS=$2; shift ;;
	--qos) QOS=$2; shift ;;
	--w) W=$2; shift ;;
	--window) WINDOW=$2; shift ;;
	--top) TOP=$2; shift ;;
	--room) ROOM=":room"; shift 0 ;;
	--build-dir) BUILD=$(cd "$2" && pwd); shift ;;
	*) echo "profile.sh: unknown option $1" >&2; exit 64 ;;
	esac
	shift
done
command -v perf >/dev/null || { echo "profile.sh: perf is not installed" >&2; exit 1; }
cmake --build "$BUILD" --target chatbench mosquitto_chat -j2 >/dev/null
GEN=$BUILD/chatbench
OUT=$BUILD/bench/profile
rm -rf "$OUT"; mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

BROKER=
trap '[ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null; true' EXIT
for side in plugin plain; do
	port=$("$GEN" freeport)
	{
		printf 'per_listener_settings false\nallow_anonymous true\nuser root\n'
		printf 'listener %s 127.0.0.1\nmax_queued_messages 100000\nmax_connections -1\n' "$port"
		printf 'set_tcp_nodelay true\nconnection_messages false\nlog_dest stderr\n'
		if [ "$side" = plugin ]; then
			printf 'plugin %s\nplugin_opt_request_rate 1000000\nplugin_opt_request_burst 1000000\n' \
				"$BUILD/mosquitto_chat.so"
			printf 'plugin_opt_offline_queue 100000\nplugin_opt_outside_chat allow\n'
		fi
	} >"$OUT/$side.conf"
	taskset -c 0 /usr/sbin/mosquitto -c "$OUT/$side.conf" 2>"$OUT/$side.log" &
	BROKER=$!
	"$GEN" waitport --plugin-port "$port" --timeout 10
	flag=""; [ "$side" = plugin ] && flag=$ROOM
	taskset -c 1 "$GEN" fanout --side "$side:$side:$port:$BROKER$flag" --users "$USERS" \
		--members "$MEMBERS" --phases "$QOS:$W" --warmup "$WARMUP" --window "$WINDOW" \
		>"$OUT/$side.res" 2>"$OUT/$side.gen.log" &
	genpid=$!
	# The setup takes about a second; record from the middle of the warm-up for WINDOW - 2 s.
	sleep $((WARMUP))
	perf record -q -e cpu-clock -g -p "$BROKER" -o "$OUT/$side.perf" -- sleep $((WINDOW - 2)) \
		>/dev/null 2>&1
	wait "$genpid"
	kill "$BROKER"; wait "$BROKER" 2>/dev/null || true; BROKER=
	grep RESULT "$OUT/$side.res" >&2
	perf report -i "$OUT/$side.perf" --no-children --sort dso,sym -g none --percent-limit 0.01 \
		2>/dev/null | grep '%' >"$OUT/$side.syms"
done

# ns of broker CPU per delivery = share of samples x broker CPU over the window / deliveries
awk -v top="$TOP" '
function field(line, key,   m) { if (match(line, key "=[^ ]+")) return substr(line, RSTART + length(key) + 1, RLENGTH - length(key) - 1); return 0 }
FNR == 1 { file++ }
file <= 2 { side = file == 1 ? "plugin" : "plain"; line = $0
	rate[side] = field(line, "rate"); cpu[side] = field(line, "broker_cpu"); next }
{
	side = file == 3 ? "plugin" : "plain"
	p = $1; sub("%", "", p)
	dso = $2; $1 = ""; $2 = ""; $3 = ""; sym = $0; sub(/^ +/, "", sym)
	key = dso " " sym
	if (!(key in seen)) { seen[key] = 1; keys[++n] = key }
	# broker CPU seconds per second / deliveries per second = seconds per delivery
	ns[key, side] = p / 100 * cpu[side] / 100 / rate[side] * 1e9
	tot[side] += ns[key, side]
}
END {
	printf "Broker CPU per delivery (ns), fan-out QoS %s: plugin %.0f deliveries/s at %s%% CPU, plain %.0f at %s%% CPU\n\n", "'"$QOS"'", rate["plugin"], cpu["plugin"], rate["plain"], cpu["plain"]
	printf "| dso | symbol | plugin ns | plain ns | extra ns |\n|---|---|---:|---:|---:|\n"
	printf "| all | (total per delivery) | %.0f | %.0f | %.0f |\n", 1e9 * cpu["plugin"] / 100 / rate["plugin"], 1e9 * cpu["plain"] / 100 / rate["plain"], 1e9 * cpu["plugin"] / 100 / rate["plugin"] - 1e9 * cpu["plain"] / 100 / rate["plain"]
	for (i = 1; i <= n; i++) { k = keys[i]; d[i] = ns[k, "plugin"] - ns[k, "plain"] }
	for (c = 0; c < top && c < n; c++) {
		best = 0
		for (i = 1; i <= n; i++) if (!(i in used) && (best == 0 || (d[i] > d[best]) || (-d[i] > d[best] && d[best] < 0 && -d[i] > -d[best]))) best = i
		if (best == 0) break
		used[best] = 1; k = keys[best]; split(k, kk, " ")
		sym = substr(k, length(kk[1]) + 2)
		printf "| %s | %s | %.0f | %.0f | %+.0f |\n", kk[1], sym, ns[k, "plugin"], ns[k, "plain"], d[best]
	}
}' "$OUT/plugin.res" "$OUT/plain.res" "$OUT/plugin.syms" "$OUT/plain.syms" | tee "$OUT/profile.md"
