#!/usr/bin/env bash
# The benchmark of issues #4, #10 and #11: the chat plugin against plain mosquitto doing the same
# deliveries, side by side in one run, on loopback; the store (database on/off, a big database,
# a history storm, state at 100k users) and room topics (fan-out, latency, queued memory). Builds the load generator (chatbench) and the plugin if
# needed, starts brokers pinned to one core and the generator on another, runs the workloads,
# prints a Markdown table and writes results and the login-storm plot under <build>/bench/.
#
#   tests/bench/run.sh            the full default run (about 10 minutes on 2 cores)
#   tests/bench/run.sh --smoke    tiny sizes, < 20 s; exits non-zero only on wrong behaviour
#   tests/bench/run.sh --help     every option
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}

SMOKE=0
BUILD_FIRST=1
ONLY="fanout,store,history,state,queue,storm,memory"
SIZES="1000/50,100/10"
PHASES_BIG="0:16,1:16,0:1,1:1"   # at the largest fan-out size: the targets' QoS 0 and 1
PHASES_SMALL="1:16,1:1"          # at the other sizes (QoS 1), to keep the run short
PHASES=""                        # --phases: the same list for every size
WARMUP=2
WINDOW=10
STORM="100,1000,5000,10000"
STORM_USERS="100,1000"           # per-entity directory (chat/users/+), for comparison (paced)
STORM_TIMEOUT=20
STORM_PACED=100                  # a second storm curve with at most this many clients in the
                                 # handshake at once (the listen backlog): no SYN retries
STORM_RSS_MB=4096
MEM="10000/1000"
STORE_SIZE="1000/50"             # issue 10: database on / off, and TICK time with a big database
STORE_PHASE="1:16"
PREFILL=1000000                  # messages stored before the big-database run
HISTORY="5000/50"                # history storm: clients (in groups of 50) asking for 50 messages
HISTORY_LIVE="1000/50"           # the live traffic meanwhile (QoS 1, w = 1)
STATE_USERS=100000               # state at scale: users logging in, each creating a group
QUEUE="200/1000/8192"            # queued messages: members away / messages / text bytes
QUEUE_PATHS="room inbox plain"
STATE_DBS="db nodb"
BROKER_CPU=0
GEN_CPU=1

usage() {
	cat <<'EOF'
usage: tests/bench/run.sh [options]
  --smoke                 tiny sizes, checks behaviour only (< 20 s); for ctest
  --build-dir DIR         build tree (default: <repo>/build); results go to DIR/bench/
  --no-build              use the chatbench and plugin already built
  --only LIST             workloads: fanout,store,history,state,queue,storm,memory (default: all)
  --sizes LIST            fan-out sizes U/M (default: 1000/50,100/10)
  --phases LIST           QoS:w pairs for every size (default: 0:16,1:16,0:1,1:1 at the
                          largest size, 1:16,1:1 at the others)
  --warmup S --window S   fan-out warm-up and measuring window (default 2 and 10)
  --storm LIST            login-storm sizes (default: 100,1000,5000,10000)
  --storm-users LIST      storm sizes following chat/users/+ instead (default: 100,1000; "" none)
  --storm-timeout S       give up on one storm after S seconds (default 30)
  --storm-paced N         also run each storm with at most N clients in the TCP/MQTT
                          handshake at once (default 100, the listen backlog; 0: don't)
  --memory U/G            users/groups for the memory workload (default: 10000/1000)
  --store-size U/M        database on/off fan-out size (default 1000/50, phase QoS 1 w=16)
  --prefill N             messages in the big database (default 1000000)
  --history N/M           history storm: N clients in groups of M (default 5000/50)
  --state-users N         users (and groups) created in the state workload (default 100000)
  --queue M/N/B           M away members, N queued messages of B bytes (default 200/1000/8192)
  --broker-cpu N --gen-cpu N   cores to pin to (default 0 and 1)
EOF
}

while [ $# -gt 0 ]; do
	case "$1" in
	--smoke) SMOKE=1 ;;
	--build-dir) BUILD=$(cd "$2" && pwd); shift ;;
	--no-build) BUILD_FIRST=0 ;;
	--only) ONLY=$2; shift ;;
	--sizes) SIZES=$2; shift ;;
	--phases) PHASES=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	--window) WINDOW=$2; shift ;;
	--storm) STORM=$2; shift ;;
	--storm-users) STORM_USERS=$2; shift ;;
	--storm-timeout) STORM_TIMEOUT=$2; shift ;;
	--storm-paced) STORM_PACED=$2; shift ;;
	--memory) MEM=$2; shift ;;
	--store-size) STORE_SIZE=$2; shift ;;
	--prefill) PREFILL=$2; shift ;;
	--history) HISTORY=$2; shift ;;
	--state-users) STATE_USERS=$2; shift ;;
	--queue) QUEUE=$2; shift ;;
	--broker-cpu) BROKER_CPU=$2; shift ;;
	--gen-cpu) GEN_CPU=$2; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 64 ;;
	esac
	shift
done

STRICT=""
SETTLE=0.1                       # s between broker RSS readings while it settles
OUT=$BUILD/bench
if [ "$SMOKE" = 1 ]; then
	SIZES="20/5"; PHASES="0:2,1:2"; WARMUP=0.1; WINDOW=0.3
	STORM="50"; STORM_USERS="50"; STORM_TIMEOUT=15; STORM_PACED=10; MEM="200/20"; STRICT="--strict"
	STORE_SIZE="20/5"; PREFILL=1000; HISTORY="50/10"; HISTORY_LIVE="20/5"; STATE_USERS=200
	QUEUE="10/20/8192"; QUEUE_PATHS="room inbox"; STATE_DBS="db"; SETTLE=0.03
	OUT=$BUILD/bench/smoke
fi

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { echo "run.sh: $*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------------
# Build
# ------------------------------------------------------------------------------------------------
if [ "$BUILD_FIRST" = 1 ]; then
	if [ ! -f "$BUILD/CMakeCache.txt" ]; then
		cmake -S "$ROOT" -B "$BUILD" >/dev/null
	fi
	cmake --build "$BUILD" --target chatbench mosquitto_chat -j2 >/dev/null ||
		die "build failed (cmake --build $BUILD --target chatbench mosquitto_chat)"
fi
GEN=$BUILD/chatbench
PLUGIN=$BUILD/mosquitto_chat.so
[ -x "$GEN" ] || die "$GEN is missing (build the chatbench target)"
[ -f "$PLUGIN" ] || die "$PLUGIN is missing (build the mosquitto_chat target)"
[ -x "$MOSQUITTO" ] || die "$MOSQUITTO is missing (apt-get install mosquitto)"

mkdir -p "$OUT"
rm -rf "$OUT/brokers" "$OUT"/results.* "$OUT"/storm.* "$OUT"/env.txt "$OUT"/gen.out "$OUT"/*.log
mkdir -p "$OUT/brokers"
RESULTS=$OUT/results.txt
: >"$RESULTS"

# ------------------------------------------------------------------------------------------------
# Limits, pinning, environment
# ------------------------------------------------------------------------------------------------
# The broker and the generator each hold one socket per client: raise the open-file limit as far
# as this process may (the generator raises its own too).
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ] || [ "$HARD" -gt 65536 ]; then WANT=65536; else WANT=$HARD; fi
ulimit -n "$WANT" 2>/dev/null || true

PIN_BROKER=() PIN_GEN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	PIN_BROKER=(taskset -c "$BROKER_CPU")
	PIN_GEN=(taskset -c "$GEN_CPU")
else
	echo "run.sh: not pinning (needs taskset and 2 cores)" >&2
fi

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
{
	echo "date=$(date -u +%FT%TZ)"
	echo "host=$(uname -n) kernel=$(uname -r) cpus=$(nproc)"
	echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "mosquitto=$($MOSQUITTO -h 2>/dev/null | head -1 | awk '{print $3}')"
	echo "nofile=$(ulimit -n)"
	echo "somaxconn=$(cat /proc/sys/net/core/somaxconn)"
	echo "tcp_max_syn_backlog=$(cat /proc/sys/net/ipv4/tcp_max_syn_backlog)"
	echo "syncookies=$(cat /proc/sys/net/ipv4/tcp_syncookies)"
	echo "pinning=broker:${PIN_BROKER[*]:-none} generator:${PIN_GEN[*]:-none}"
	echo "load_before=$(loadavg)"
} >"$OUT/env.txt"

# ------------------------------------------------------------------------------------------------
# Brokers
# ------------------------------------------------------------------------------------------------
BROKER_PIDS=()
cleanup() {
	for pid in "${BROKER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${BROKER_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT

# start_broker NAME plugin|plain [CONFIG LINE...] -> sets PORT and PID
start_broker() {
	local name=$1 kind=$2 conf=$OUT/brokers/$1.conf
	shift 2
	PORT=$("$GEN" freeport)
	{
		echo "per_listener_settings false"
		echo "allow_anonymous true"
		echo "user root"
		echo "listener $PORT 127.0.0.1"
		echo "max_queued_messages 100000"
		echo "max_connections -1"
		echo "set_tcp_nodelay true"
		echo "connection_messages false"
		echo "log_dest stderr"
		if [ "$kind" = plugin ]; then
			echo "plugin $PLUGIN"
			# Capacity, not policy, is measured: the per-client request rate limit (default 50/s)
			# would throttle the closed loop, so it is set out of reach (its code still runs).
			echo "plugin_opt_outside_chat allow"
			echo "plugin_opt_request_rate 1000000"
			echo "plugin_opt_request_burst 1000000"
			# The broker's max_queued_messages, as the README asks.
			echo "plugin_opt_offline_queue 100000"
			# Mosquitto 2.0 listens with a backlog of 100; the plugin can raise it (README, Options).
			echo "plugin_opt_listen_backlog 4096"
		fi
		for line in "$@"; do echo "$line"; done
	} >"$conf"
	"${PIN_BROKER[@]}" "$MOSQUITTO" -c "$conf" 2>"$OUT/brokers/$name.log" &
	PID=$!
	BROKER_PIDS+=("$PID")
	"$GEN" waitport --plugin-port "$PORT" --timeout 10 ||
		{ cat "$OUT/brokers/$name.log" >&2; die "broker $name did not start"; }
}

stop_broker() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# gen ARGS... : runs the generator pinned, appends its RESULT lines; a wrong behaviour fails the run.
FAILED=0
gen() {
	local rc=0
	"${PIN_GEN[@]}" "$GEN" "$@" >"$OUT/gen.out" 2> >(tee -a "$OUT/generator.log" >&2) || rc=$?
	grep -E '^(RESULT|FAIL)' "$OUT/gen.out" >>"$RESULTS" || true
	if [ "$rc" -ne 0 ]; then
		FAILED=1
		echo "run.sh: chatbench $1 failed (exit $rc): $(grep -m1 '^FAIL' "$OUT/gen.out" || true)" >&2
	fi
	return 0
}

# timing_result NAME LABEL: the plugin's broker-thread times, which it logs at a clean shutdown
# ("chat: broker-thread time per tick: n=..., mean=... us, max=... us, histogram <1us:n ..."),
# as RESULT lines for the report.
timing_result() {
	local log=$OUT/brokers/$1.log label=$2 what line
	for what in tick "chat request"; do
		line=$(grep -m1 "broker-thread time per $what:" "$log" || true)
		[ -n "$line" ] || { echo "run.sh: no $what timing in $log" >&2; continue; }
		sed -E "s/.*per [a-z ]+: n=([0-9]+), mean=([0-9.]+) us, max=([0-9]+) us, histogram ?(.*)/RESULT timing label=$label what=${what// /_} n=\1 mean_us=\2 max_us=\3 hist=\4/; s/ (<[0-9]+us:)/,\1/g; s/hist=,/hist=/" <<<"$line" >>"$RESULTS"
	done
}

# prefill_db FILE N: a database in the store's own schema (made by the plugin itself on a first
# start) holding N messages in 1000 rooms that no group uses, so they never reach a client but
# every query and insert works on an index of that size.
prefill_db() {
	local db=$1 n=$2
	start_broker prefill plugin "plugin_opt_database $db"
	stop_broker "$PID"
	sqlite3 "$db" <<EOF
PRAGMA synchronous=OFF;
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $n)
INSERT INTO messages(id, room, ts, body)
SELECT i, (900000 + i % 1000) || '1', CAST(strftime('%s', 'now') AS INTEGER) * 1000,
	'{"sender":"10","receiver":"' || (900000 + i % 1000) || '1","message":"' ||
	printf('%0100d', i) || '","id":"' || i || '","ts":0}'
FROM c;
UPDATE meta SET value = $n + 1 WHERE key IN ('next_message', 'reserved_message') AND value <= $n;
COMMIT;
EOF
}

has() { [[ ",$ONLY," == *",$1,"* ]]; }
largest_size() { tr ',' '\n' <<<"$SIZES" | sort -t/ -k1,1n | tail -1; }

# ------------------------------------------------------------------------------------------------
# Workloads 1 and 2: fan-out throughput and latency, plugin and plain brokers side by side
# ------------------------------------------------------------------------------------------------
if has fanout; then
	BIG=$(largest_size)
	for size in ${SIZES//,/ }; do
		users=${size%/*} members=${size#*/}
		phases=$PHASES
		if [ -z "$phases" ]; then
			if [ "$size" = "$BIG" ]; then phases=$PHASES_BIG; else phases=$PHASES_SMALL; fi
		fi
		say "fan-out U=$users M=$members phases $phases (load $(loadavg))"
		start_broker "fanout-$users-plugin" plugin; P1=$PORT; PID1=$PID
		start_broker "fanout-$users-plain" plain; P2=$PORT; PID2=$PID
		sides=(--side "plugin:plugin:$P1:$PID1" --side "plain:plain:$P2:$PID2")
		if [ "$size" = "$BIG" ]; then
			# Issue 11: the same workload with members reading chat/room/<gid> (DESIGN.md §11).
			start_broker "fanout-$users-room" plugin; P3=$PORT; PID3=$PID
			sides+=(--side "room:plugin:$P3:$PID3:room")
		fi
		gen fanout "${sides[@]}" --users "$users" --members "$members" --phases "$phases" \
			--warmup "$WARMUP" --window "$WINDOW"
		stop_broker "$PID1"; stop_broker "$PID2"
		timing_result "fanout-$users-plugin" "fanout-$users-plugin"
		if [ "$size" = "$BIG" ]; then
			stop_broker "$PID3"
			timing_result "fanout-$users-room" "fanout-$users-room"
		fi
	done
fi

# ------------------------------------------------------------------------------------------------
# Issue 10: the store. Fan-out with the database on and off, then the same with a database
# holding PREFILL messages; the plugin's own TICK timing shows what the broker thread pays.
# ------------------------------------------------------------------------------------------------
if has store; then
	users=${STORE_SIZE%/*} members=${STORE_SIZE#*/}
	say "store: fan-out U=$users M=$members phase $STORE_PHASE, database off / on (load $(loadavg))"
	rm -f "$OUT"/brokers/*.db*
	start_broker store-nodb plugin; P1=$PORT; PID1=$PID
	start_broker store-db plugin "plugin_opt_database $OUT/brokers/store-db.db"; P2=$PORT; PID2=$PID
	gen fanout --side "nodb:plugin:$P1:$PID1" --side "db:plugin:$P2:$PID2" --users "$users" \
		--members "$members" --phases "$STORE_PHASE" --warmup "$WARMUP" --window "$WINDOW"
	stop_broker "$PID1"; stop_broker "$PID2"
	timing_result store-nodb nodb
	timing_result store-db db
	if command -v sqlite3 >/dev/null; then
		say "store: filling a database with $PREFILL messages (load $(loadavg))"
		t0=$(date +%s%N)
		prefill_db "$OUT/brokers/store-big.db" "$PREFILL"
		t1=$(date +%s%N)
		echo "RESULT prefill messages=$PREFILL ms=$(((t1 - t0) / 1000000)) bytes=$(stat -c %s "$OUT/brokers/store-big.db")" >>"$RESULTS"
		say "store: the same fan-out with $PREFILL stored messages (load $(loadavg))"
		start_broker store-big plugin "plugin_opt_database $OUT/brokers/store-big.db"
		P3=$PORT PID3=$PID
		gen fanout --side "dbbig:plugin:$P3:$PID3" --users "$users" --members "$members" \
			--phases "$STORE_PHASE" --warmup "$WARMUP" --window "$WINDOW"
		stop_broker "$PID3"
		timing_result store-big dbbig
	else
		echo "run.sh: sqlite3 is not installed (apt-get install -y sqlite3): no big-database run" >&2
	fi
	rm -f "$OUT"/brokers/*.db*
fi

# ------------------------------------------------------------------------------------------------
# Issue 10: a history storm. Live group traffic (QoS 1, w = 1) alone, then while N clients each
# ask chat/history for the newest 50 messages of their group at once.
# ------------------------------------------------------------------------------------------------
if has history; then
	clients=${HISTORY%/*} cmembers=${HISTORY#*/}
	users=${HISTORY_LIVE%/*} members=${HISTORY_LIVE#*/}
	say "history storm: $clients clients asking for 50 messages, live U=$users M=$members (load $(loadavg))"
	rm -f "$OUT"/brokers/history.db*
	start_broker history plugin "plugin_opt_database $OUT/brokers/history.db"
	gen history --plugin-port "$PORT" --plugin-pid "$PID" --users "$users" --members "$members" \
		--phases 1:1 --clients "$clients" --client-members "$cmembers" --limit 50 \
		--warmup "$WARMUP" --window "$WINDOW" --timeout 60
	stop_broker "$PID"
	timing_result history history
	rm -f "$OUT"/brokers/history.db*
fi

# ------------------------------------------------------------------------------------------------
# Issue 10: state at scale. Live group traffic (100 users in groups of 10, QoS 1, w = 1) while
# STATE_USERS users log in (in waves of 5000 connections), each creates a group of its own and
# goes away (persistent session): the store saves all of it; the broker thread must not stall.
# Without a database too, to tell the store's share from the rest (the directory snapshot).
# ------------------------------------------------------------------------------------------------
if has state; then
	limit=$((STATE_USERS * 2))
	for db in $STATE_DBS; do
		say "state: $STATE_USERS users and groups, $db (load $(loadavg))"
		rm -f "$OUT"/brokers/state.db*
		dbopt=(); [ "$db" = db ] && dbopt=("plugin_opt_database $OUT/brokers/state.db")
		start_broker "state-$db" plugin "plugin_opt_max_users $limit" \
			"plugin_opt_max_groups $limit" "${dbopt[@]}"
		gen state --plugin-port "$PORT" --plugin-pid "$PID" --users 100 --members 10 \
			--phases 1:1 --clients "$STATE_USERS" --warmup "$WARMUP" --window "$WINDOW"
		stop_broker "$PID"
		sed -i "s/^RESULT state users=/RESULT state db=$db users=/" "$RESULTS"
		timing_result "state-$db" "state-$db"
		rm -f "$OUT"/brokers/state.db*
	done
fi

# ------------------------------------------------------------------------------------------------
# Issue 11: memory of messages queued for a group of away members (persistent sessions gone).
# The inbox path stores one copy per member, the room path one for all; the delivery budget
# would refuse the inbox path's copies (that is its purpose), so it is set out of reach here.
# ------------------------------------------------------------------------------------------------
if has queue; then
	qm=${QUEUE%%/*} rest=${QUEUE#*/}; qn=${rest%/*} qb=${rest#*/}
	for kind in $QUEUE_PATHS; do
		say "queue $kind: $qn messages of $qb bytes for $qm away members (load $(loadavg))"
		if [ "$kind" = plain ]; then
			start_broker "queue-$kind" plain
		else
			start_broker "queue-$kind" plugin "plugin_opt_delivery_budget 1099511627776" \
				"plugin_opt_delivery_burst 1099511627776" "plugin_opt_max_message_bytes 65536"
		fi
		flag=""; [ "$kind" = room ] && flag=":room"
		btype=plugin; [ "$kind" = plain ] && btype=plain
		gen queue --side "$kind:$btype:$PORT:$PID$flag" --members "$qm" --messages "$qn" \
			--message-bytes "$qb" --settle "$SETTLE"
		stop_broker "$PID"
	done
fi

# ------------------------------------------------------------------------------------------------
# Workload 3: login storm, a fresh broker for every size
# ------------------------------------------------------------------------------------------------
storm() { # storm plugin|plain USERS contacts|users CONNECT_WINDOW
	local kind=$1 users=$2 dir=$3 window=$4
	start_broker "storm-$users-$kind-$dir-$window" "$kind"
	gen storm "--$kind-port" "$PORT" "--$kind-pid" "$PID" --users "$users" --dir "$dir" \
		--timeout "$STORM_TIMEOUT" --rss-limit-mb "$STORM_RSS_MB" --connect-window "$window" \
		$STRICT
	stop_broker "$PID"
}
if has storm; then
	for users in ${STORM//,/ }; do
		say "login storm U=$users (load $(loadavg))"
		storm plain "$users" contacts 0
		storm plugin "$users" contacts 0
		if [ "${STORM_PACED:-0}" -gt 0 ]; then
			storm plain "$users" contacts "$STORM_PACED"
			storm plugin "$users" contacts "$STORM_PACED"
		fi
	done
	for users in ${STORM_USERS//,/ }; do
		say "login storm U=$users following chat/users/+ (load $(loadavg))"
		storm plugin "$users" users "${STORM_PACED:-0}"
	done
fi

# ------------------------------------------------------------------------------------------------
# Workload 4: memory
# ------------------------------------------------------------------------------------------------
if has memory; then
	users=${MEM%/*} groups=${MEM#*/}
	for kind in plain plugin; do
		say "memory $kind: $users users in $groups groups (load $(loadavg))"
		start_broker "memory-$kind" "$kind"
		gen memory "--$kind-port" "$PORT" "--$kind-pid" "$PID" --users "$users" --groups "$groups" \
			--settle "$SETTLE"
		stop_broker "$PID"
	done
fi

echo "load_after=$(loadavg)" >>"$OUT/env.txt"

# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
awk -f "$ROOT/tests/bench/report.awk" -v envfile="$OUT/env.txt" -v datfile="$OUT/storm.dat" \
	"$RESULTS" >"$OUT/results.md"
cat "$OUT/results.md"

if [ -s "$OUT/storm.dat" ] && command -v gnuplot >/dev/null; then
	if gnuplot -e "set terminal pngcairo" 2>/dev/null; then TERM_SPEC="pngcairo size 1200,600"; EXT=png
	else TERM_SPEC="svg size 1200,600"; EXT=svg; fi
	gnuplot -e "term_spec='$TERM_SPEC'; outfile='$OUT/storm.$EXT'; datfile='$OUT/storm.dat'" \
		"$ROOT/tests/bench/storm.gp" 2>"$OUT/gnuplot.log" &&
		echo "Login-storm plot: $OUT/storm.$EXT" ||
		echo "run.sh: gnuplot failed, see $OUT/gnuplot.log" >&2
elif [ -s "$OUT/storm.dat" ]; then
	echo "(no plot: gnuplot is not installed; apt-get install -y gnuplot-nox)"
fi
echo "Results: $OUT/results.md (raw: $RESULTS, environment: $OUT/env.txt)"

if [ "$FAILED" != 0 ]; then
	echo "run.sh: WRONG BEHAVIOUR seen by the generator (see FAIL lines above)" >&2
	exit 2
fi
