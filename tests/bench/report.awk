# Turns chatbench's "RESULT <workload> key=value ..." lines into the benchmark's Markdown report,
# and writes the login-storm curve for gnuplot.
#   awk -f report.awk -v envfile=ENV -v datfile=storm.dat results.txt > results.md

function parse(line,    n, i, p, parts) {
	delete F
	n = split(line, parts, " ")
	F["workload"] = parts[2]
	for (i = 3; i <= n; i++) {
		p = index(parts[i], "=")
		if (p > 0) F[substr(parts[i], 1, p - 1)] = substr(parts[i], p + 1)
	}
}
function ratio(a, b) { return (b > 0 && a != "" && b != "") ? sprintf("%.2f", a / b) : "–" }
function ms(us) { return sprintf("%.1f", us / 1000.0) }
function secs(s) { return s < 0 ? "–" : sprintf("%.2f", s) }
function mark(ok) { return ok ? "✅" : "❌" }
function cpu(p, q) { return (p == "" ? "–" : sprintf("%.0f%%", p)) " / " (q == "" ? "–" : sprintf("%.0f%%", q)) }

/^FAIL/ { fails[++nfail] = substr($0, 6); next }

/^RESULT fanout/ {
	parse($0)
	k = F["users"] "/" F["members"] " " F["qos"] " " F["w"]
	if (!(k in seen_fan)) { seen_fan[k] = 1; fan[++nfan] = k }
	s = F["side"]
	if (!((k, s) in seen_side)) { seen_side[k, s] = 1; nsides[k]++; sidelist[k, nsides[k]] = s }
	rate[k, s] = F["rate"]; p50[k, s] = F["p50_us"]; p99[k, s] = F["p99_us"]; mx[k, s] = F["max_us"]
	fgen[k, s] = F["gen_cpu"]; fbro[k, s] = F["broker_cpu"]; fmsg[k, s] = F["msgs_per_s"]
	fu[k] = F["users"]; fm[k] = F["members"]; fq[k] = F["qos"]; fw[k] = F["w"]
	if (F["users"] + 0 > bigu) bigu = F["users"] + 0
	next
}

/^RESULT storm/ {
	parse($0)
	u = F["users"]
	# plain0 / contacts0 / users0: all at once; plainP / contactsP / usersP: paced connects
	key = ((F["side"] == "plain") ? "plain" : F["dir"]) (F["window"] + 0 > 0 ? "P" : "0")
	if (F["window"] + 0 > 0) paced = F["window"]
	if (!(u in seen_storm)) { seen_storm[u] = 1; storm[++nstorm] = u }
	for (f in F) S[u, key, f] = F[f]
	next
}

/^RESULT timing/ {
	parse($0)
	l = F["label"] " " F["what"]
	if (!(l in seen_timing)) { seen_timing[l] = 1; timing[++ntiming] = l }
	for (f in F) T[l, f] = F[f]
	next
}

/^RESULT (history|prefill|queue|state)/ {
	parse($0)
	w = F["workload"]
	key = w (w == "queue" ? " " F["side"] : "") (w == "state" ? " " F["db"] : "")
	for (f in F) X[key, f] = F[f]
	next
}

/^RESULT memory/ {
	parse($0)
	for (f in F) M[F["side"], f] = F[f]
	next
}

END {
	while ((getline line < envfile) > 0) {
		p = index(line, "=")
		env[substr(line, 1, p - 1)] = substr(line, p + 1)
		envlines[++nenv] = line
	}
	print "# mosquitto-chat benchmark: the chat plugin against plain mosquitto"
	print ""
	printf "%s, %s, %s. Broker and generator pinned (%s). ", env["date"], env["cpu"], env["host"], env["pinning"]
	printf "Load average before %s, after %s. ", env["load_before"], env["load_after"]
	printf "mosquitto %s. Open files %s (broker and generator); net.core.somaxconn %s, so the listen backlog is min(100, somaxconn) = %d (mosquitto 2.0 asks for 100); tcp_max_syn_backlog %s, syncookies %s.\n\n", env["mosquitto"], env["nofile"], env["somaxconn"], env["somaxconn"] < 100 ? env["somaxconn"] : 100, env["tcp_max_syn_backlog"], env["syncookies"]

	print "| Workload | Figure | Plugin | Plain | Plugin / plain | Target | Generator CPU (plugin / plain) |"
	print "|---|---|---:|---:|---:|---|---|"
	for (i = 1; i <= nfan; i++) {
		k = fan[i]
		name = "U=" fu[k] " M=" fm[k] " QoS " fq[k] " w=" fw[k]
		r = ratio(rate[k, "plugin"], rate[k, "plain"])
		t = "–"
		if (fw[k] == 16 && fu[k] == 1000 && fm[k] == 50 && r != "–") t = "≥ 0.80 " mark(r + 0 >= 0.8)
		printf "| Fan-out %s | deliveries/s | %.0f | %.0f | %s | %s | %s |\n", name,
			rate[k, "plugin"], rate[k, "plain"], r, t, cpu(fgen[k, "plugin"], fgen[k, "plain"])
		r = ratio(p99[k, "plugin"], p99[k, "plain"])
		t = "–"
		if (fw[k] == 1 && r != "–") t = "p99 ≤ 1.5× " mark(r + 0 <= 1.5)
		printf "| Latency %s | p50 / p99 / max ms | %s / %s / %s | %s / %s / %s | p99 %s | %s | (same run) |\n",
			name, ms(p50[k, "plugin"]), ms(p99[k, "plugin"]), ms(mx[k, "plugin"]),
			ms(p50[k, "plain"]), ms(p99[k, "plain"]), ms(mx[k, "plain"]), r, t
	}
	for (i = 1; i <= nstorm; i++) {
		u = storm[i]
		for (j = 0; j < 2; j++) {
			m = j == 0 ? "0" : "P"
			if (!((u, "contacts" m, "users") in S) && !((u, "plain" m, "users") in S)) continue
			pd = S[u, "contacts" m, "done_s"]; qd = S[u, "plain" m, "done_s"]
			st = S[u, "contacts" m, "status"]
			pv = ((u, "contacts" m, "users") in S) ? (st == "ok" ? secs(pd) : "incomplete (" st ", " S[u, "contacts" m, "complete"] "/" u " after " secs(S[u, "contacts" m, "elapsed_s"]) " s)") : "–"
			t = "–"
			if (u == 10000 && m == "0" && ((u, "contacts" m, "users") in S)) t = "≤ 10 s " mark(st == "ok" && pd + 0 <= 10)
			printf "| Login storm U=%s, %s | s until every client holds all U users (plain: all connected and subscribed) | %s | %s | %s | %s | %s |\n",
				u, m == "0" ? "all at once" : "paced, ≤ " paced " in handshake", pv,
				((u, "plain" m, "users") in S) ? secs(qd) : "–",
				(st == "ok" && qd > 0) ? ratio(pd, qd) : "–", t,
				cpu(S[u, "contacts" m, "gen_cpu"], S[u, "plain" m, "gen_cpu"])
		}
	}
	if (("plugin", "users") in M && ("plain", "users") in M) {
		U = M["plugin", "users"]; G = M["plugin", "groups"]
		pr = M["plugin", "rss3_kb"]; qr = M["plain", "rss3_kb"]
		printf "| Memory %s users in %s groups | broker RSS, MiB | %.1f | %.1f | %s | – | %s |\n",
			U, G, pr / 1024, qr / 1024, ratio(pr, qr), cpu(M["plugin", "gen_cpu"], M["plain", "gen_cpu"])
		extra = ((M["plugin", "rss3_kb"] - M["plugin", "rss1_kb"]) - (M["plain", "rss3_kb"] - M["plain", "rss1_kb"])) / U
		printf "| Memory per logged-in user | KiB beyond plain (login + its membership) | %.2f | – | – | %s | |\n",
			extra, U == 10000 ? "≤ 2 KiB " mark(extra <= 2) : "–"
	}

	issues()

	if (nfan > 0) {
		print ""
		print "### Fan-out detail"
		print ""
		print "Closed loop, message text " "100 bytes; deliveries counted over the window after the warm-up. Broker CPU is of its one pinned core."
		print ""
		print "| Size | QoS | w | side | deliveries/s | messages/s | p50 ms | p99 ms | max ms | broker CPU | generator CPU |"
		print "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
		for (i = 1; i <= nfan; i++) {
			k = fan[i]
			for (j = 1; j <= nsides[k]; j++) {
				s = sidelist[k, j]
				printf "| U=%s M=%s | %s | %s | %s | %.0f | %.0f | %s | %s | %s | %.0f%% | %.0f%% |\n",
					fu[k], fm[k], fq[k], fw[k], s, rate[k, s], fmsg[k, s], ms(p50[k, s]), ms(p99[k, s]),
					ms(mx[k, s]), fbro[k, s], fgen[k, s]
			}
		}
	}

	if (nstorm > 0) {
		print ""
		print "### Login storm curve"
		print ""
		print "*At once*: all U clients call connect() together; the listen backlog is 100, so SYNs beyond it are dropped and each client's kernel resends them after 1 s, 3 s, 7 s, 15 s. *Paced*: at most " (paced ? paced : "N") " clients in the TCP + MQTT handshake at a time (a new one starts at each CONNACK), so no SYN is dropped. Every client subscribes its inbox and the directory (`chat/contacts`, or `chat/users/+` where noted) and logs in; times are from the first connect(). Plain: the same clients connect, subscribe and publish a QoS 1 'login' that nobody reads. *Snapshots*: chat/contacts publishes an observer saw during the storm; *directory MB*: what all clients received in total."
		print ""
		print "| U | side | connects | directory | status | all CONNACKed s | all logged in s | all complete s | slowest TCP connect s | SYN retried | listen overflows | snapshots | last snapshot KiB | directory MB | peak RSS MiB | broker CPU | generator CPU |"
		print "|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		nk = split("plain0 contacts0 users0 plainP contactsP usersP", keys, " ")
		for (i = 1; i <= nstorm; i++) {
			u = storm[i]
			for (j = 1; j <= nk; j++) {
				key = keys[j]
				if (!((u, key, "users") in S)) continue
				d = substr(key, 1, length(key) - 1)
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %s | %.0f%% | %.0f%% |\n",
					u, S[u, key, "side"], (S[u, key, "window"] > 0 ? "paced " S[u, key, "window"] : "at once"),
					d == "plain" ? "–" : (d == "contacts" ? "chat/contacts" : "chat/users/+"),
					S[u, key, "status"], secs(S[u, key, "connect_s"]), secs(S[u, key, "login_s"]),
					secs(S[u, key, "done_s"]), secs(S[u, key, "max_tcp_s"]), S[u, key, "syn_retried"],
					S[u, key, "listen_overflows"], S[u, key, "snapshots"], S[u, key, "snapshot_last_bytes"] / 1024,
					S[u, key, "dir_mb"], S[u, key, "peak_rss_mb"], S[u, key, "broker_cpu"], S[u, key, "gen_cpu"]
			}
			# storm.dat: U, plain at once, plugin at once (connected, logged in, complete),
			# plain paced, plugin paced complete, chat/users/+ paced complete,
			# snapshots at once / paced, directory MB at once / paced
			printf "%s %s %s %s %s %s %s %s %s %s %s %s\n", u,
				dat(S[u, "plain0", "done_s"], S[u, "plain0", "status"]),
				dat(S[u, "contacts0", "connect_s"], "ok"), dat(S[u, "contacts0", "login_s"], "ok"),
				dat(S[u, "contacts0", "done_s"], S[u, "contacts0", "status"]),
				dat(S[u, "plainP", "done_s"], S[u, "plainP", "status"]),
				dat(S[u, "contactsP", "done_s"], S[u, "contactsP", "status"]),
				dat(S[u, "usersP", "done_s"], S[u, "usersP", "status"]),
				num(S[u, "contacts0", "snapshots"]), num(S[u, "contactsP", "snapshots"]),
				num(S[u, "contacts0", "dir_mb"]), num(S[u, "contactsP", "dir_mb"]) > datfile
		}
		close(datfile)
	}

	if (("plugin", "users") in M || ("plain", "users") in M) {
		print ""
		print "### Memory by stage"
		print ""
		print "Broker VmRSS after each stage has settled. Plain's equivalents: connected = the same clients subscribed to an inbox filter; logged in = the same login publishes (nothing is stored); grouped = each member subscribes to its group's topic."
		print ""
		print "| side | idle KiB | connected KiB | logged in KiB | grouped KiB | per user (login) B | per membership B |"
		print "|---|---:|---:|---:|---:|---:|---:|"
		for (j = 0; j < 2; j++) {
			s = j == 0 ? "plugin" : "plain"
			if (!((s, "users") in M)) continue
			printf "| %s | %s | %s | %s | %s | %.0f | %.0f |\n", s, M[s, "rss0_kb"], M[s, "rss1_kb"],
				M[s, "rss2_kb"], M[s, "rss3_kb"],
				(M[s, "rss2_kb"] - M[s, "rss1_kb"]) * 1024 / M[s, "users"],
				(M[s, "rss3_kb"] - M[s, "rss2_kb"]) * 1024 / M[s, "memberships"]
		}
	}

	if (nfail > 0) {
		print ""
		print "### WRONG BEHAVIOUR"
		print ""
		for (i = 1; i <= nfail; i++) print "- " fails[i]
	}
}

function us_ms(v) { return v == "" ? "–" : sprintf("%.1f", v / 1000.0) }
function mib(kb) { return kb == "" ? "–" : sprintf("%.1f", kb / 1024.0) }

# The figures issues 10 (the store) and 11 (room topics) ask for, each against its baseline in
# the same run.
function issues(    k, i, r, t, n, l, key, label) {
	n = 0
	for (i = 1; i <= nfan; i++) {
		k = fan[i]
		if ((k, "room") in rate || (k, "db") in rate) n++
	}
	if (n == 0 && !(("history", "replies") in X) && !(("queue room", "members") in X) && ntiming == 0) return
	print ""
	print "### Issues 10 (store) and 11 (room topics)"
	print ""
	print "| Workload | Figure | Measured | Baseline | Measured / baseline | Target |"
	print "|---|---|---:|---:|---:|---|"
	for (i = 1; i <= nfan; i++) {
		k = fan[i]
		name = "U=" fu[k] " M=" fm[k] " QoS " fq[k] " w=" fw[k]
		big = fu[k] == 1000 && fm[k] == 50
		if ((k, "db") in rate && (k, "nodb") in rate) {
			r = ratio(rate[k, "db"], rate[k, "nodb"])
			printf "| Fan-out %s, database on (baseline: off) | deliveries/s | %.0f | %.0f | %s | %s |\n",
				name, rate[k, "db"], rate[k, "nodb"], r, big && fw[k] == 16 ? "≥ 0.95 " mark(r + 0 >= 0.95) : "–"
		}
		if ((k, "dbbig") in rate && (k, "nodb") in rate) {
			printf "| Fan-out %s, database holding %s messages (baseline: off) | deliveries/s | %.0f | %.0f | %s | – |\n",
				name, X["prefill", "messages"], rate[k, "dbbig"], rate[k, "nodb"], ratio(rate[k, "dbbig"], rate[k, "nodb"])
		}
		if ((k, "room") in rate && (k, "plain") in rate) {
			r = ratio(rate[k, "room"], rate[k, "plain"])
			printf "| Fan-out %s, room topics (baseline: plain) | deliveries/s | %.0f | %.0f | %s | %s |\n",
				name, rate[k, "room"], rate[k, "plain"], r, big && fw[k] == 16 ? "≥ 0.95 " mark(r + 0 >= 0.95) : "–"
			r = ratio(p99[k, "room"], p99[k, "plain"])
			printf "| Latency %s, room topics (baseline: plain) | p99 ms | %s | %s | %s | %s |\n",
				name, ms(p99[k, "room"]), ms(p99[k, "plain"]), r, fw[k] == 1 ? "≤ 1.2 " mark(r + 0 <= 1.2) : "–"
		}
	}
	if (("db tick", "max_us") in T && ("dbbig tick", "max_us") in T) {
		printf "| TICK time during that fan-out, %s stored messages (baseline: a new database) | broker-thread max / mean µs | %s / %s | %s / %s | max %s | max does not grow |\n",
			X["prefill", "messages"], T["dbbig tick", "max_us"], T["dbbig tick", "mean_us"],
			T["db tick", "max_us"], T["db tick", "mean_us"], ratio(T["dbbig tick", "max_us"], T["db tick", "max_us"])
	}
	if (("history", "replies") in X) {
		r = ratio(X["history", "storm_p99_us"], X["history", "base_p99_us"])
		printf "| History storm: %s clients × %s messages, every reply whole | s until the last reply | %.2f | – | – | all replies ✅ |\n",
			X["history", "clients"], X["history", "limit"], X["history", "storm_s"]
		printf "| Live traffic U=%s M=%s QoS %s w=%s during the storm (baseline: alone) | p99 ms | %s | %s | %s | ≤ 1.2 %s |\n",
			X["history", "users"], X["history", "members"], X["history", "qos"], X["history", "w"],
			us_ms(X["history", "storm_p99_us"]), us_ms(X["history", "base_p99_us"]), r, mark(r + 0 <= 1.2)
	}
	for (i = 0; i < 2; i++) {
		key = "state " (i == 0 ? "db" : "nodb")
		if (!((key, "users") in X)) continue
		l = "state-" (i == 0 ? "db" : "nodb") " tick"
		printf "| State: %s users log in and create %s groups, database %s | broker-thread max TICK ms | %s | – | – | %s |\n",
			X[key, "users"], X[key, "groups"], i == 0 ? "on" : "off", us_ms(T[l, "max_us"]),
			i == 0 ? "no stall > 5 ms from saving (see below)" : "–"
		printf "| … live traffic U=%s M=%s QoS 1 w=1 meanwhile (baseline: before) | max gap between deliveries / p99 ms | %s / %s | %s / %s | gap %s | – |\n",
			X[key, "live_users"], X[key, "live_members"], us_ms(X[key, "load_gap_us"]), us_ms(X[key, "load_p99_us"]),
			us_ms(X[key, "base_gap_us"]), us_ms(X[key, "base_p99_us"]), ratio(X[key, "load_gap_us"], X[key, "base_gap_us"])
	}
	if (("queue room", "members") in X) {
		printf "| Queue: %s messages of %s bytes for %s away members, room topic (baseline: plain) | broker RSS growth MiB | %s | %s | %s | – |\n",
			X["queue room", "messages"], X["queue room", "bytes"], X["queue room", "members"],
			mib(X["queue room", "growth_kb"]), mib(X["queue plain", "growth_kb"]),
			ratio(X["queue room", "growth_kb"], X["queue plain", "growth_kb"])
		printf "| Queue: the same, inbox copies (baseline: plain) | broker RSS growth MiB | %s | %s | %s | – |\n",
			mib(X["queue inbox", "growth_kb"]), mib(X["queue plain", "growth_kb"]),
			ratio(X["queue inbox", "growth_kb"], X["queue plain", "growth_kb"])
	}

	if (ntiming > 0) {
		print ""
		print "### Broker-thread time per callback"
		print ""
		print "Measured by the plugin itself (CLOCK_MONOTONIC around `chat_on_tick` and around the MESSAGE callback for chat requests; logged at a clean shutdown): wall time, so it includes any time the broker thread was descheduled on this shared machine. Histogram buckets are log2 microseconds (`<8us` = 4–8 µs)."
		print ""
		print "| Broker (workload) | callback | calls | mean µs | max µs | histogram (calls per bucket) |"
		print "|---|---|---:|---:|---:|---|"
		for (i = 1; i <= ntiming; i++) {
			l = timing[i]
			label = T[l, "label"]
			printf "| %s | %s | %s | %s | %s | %s |\n", label, T[l, "what"] == "tick" ? "TICK" : "chat request",
				T[l, "n"], T[l, "mean_us"], T[l, "max_us"], T[l, "hist"]
		}
		if (("prefill", "messages") in X)
			printf "\n`dbbig`: the database was filled with %s messages (%.0f MB) by the sqlite3 CLI in %.1f s before the broker started.\n",
				X["prefill", "messages"], X["prefill", "bytes"] / 1048576, X["prefill", "ms"] / 1000
	}

	if (("queue room", "members") in X) {
		print ""
		print "### Queued messages for away members"
		print ""
		print "Persistent sessions (MQTT 5, session expiry an hour) subscribed at QoS 1, then disconnected; one member sends at QoS 1; RSS settled before and after. The delivery budget (`plugin_opt_delivery_budget`/`delivery_burst`) is set out of reach for this workload: by default it refuses the inbox path's copies (that is its purpose). Afterwards one member reconnects and must receive every message."
		print ""
		print "| path | members away | messages | bytes each | RSS before KiB | RSS after KiB | growth MiB | per message and member, bytes | a returning member got |"
		print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		split("room inbox plain", qk, " ")
		for (i = 1; i <= 3; i++) {
			key = "queue " qk[i]
			if (!((key, "members") in X)) continue
			printf "| %s | %s | %s | %s | %s | %s | %s | %.0f | %s |\n", qk[i], X[key, "members"], X[key, "messages"],
				X[key, "bytes"], X[key, "rss0_kb"], X[key, "rss1_kb"], mib(X[key, "growth_kb"]),
				X[key, "growth_kb"] * 1024 / (X[key, "messages"] * X[key, "members"]), X[key, "received"]
		}
	}

	if (("history", "replies") in X || ("state db", "users") in X) {
		print ""
		print "### History storm and state at scale, detail"
		print ""
		print "| workload | p50 ms alone | p99 ms alone | max ms alone | deliveries/s alone | p50 ms under load | p99 ms under load | max ms under load | deliveries/s under load | load lasted s | broker CPU under load |"
		print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		if (("history", "replies") in X)
			printf "| history storm (%s replies) | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %s%% |\n", X["history", "replies"],
				us_ms(X["history", "base_p50_us"]), us_ms(X["history", "base_p99_us"]), us_ms(X["history", "base_max_us"]), X["history", "base_rate"],
				us_ms(X["history", "storm_p50_us"]), us_ms(X["history", "storm_p99_us"]), us_ms(X["history", "storm_max_us"]), X["history", "storm_rate"],
				X["history", "storm_s"], X["history", "storm_broker_cpu"]
		for (i = 0; i < 2; i++) {
			key = "state " (i == 0 ? "db" : "nodb")
			if (!((key, "users") in X)) continue
			printf "| state, database %s (max gap %s ms alone, %s ms under load) | – | %s | %s | %s | – | %s | %s | %s | %.2f | %s%% |\n",
				i == 0 ? "on" : "off", us_ms(X[key, "base_gap_us"]), us_ms(X[key, "load_gap_us"]),
				us_ms(X[key, "base_p99_us"]), us_ms(X[key, "base_max_us"]), X[key, "base_rate"],
				us_ms(X[key, "load_p99_us"]), us_ms(X[key, "load_max_us"]), X[key, "load_rate"], X[key, "load_s"], X[key, "load_broker_cpu"]
		}
	}
}

function dat(v, status) { return (v == "" || v < 0 || status != "ok") ? "?" : v }
function num(v) { return v == "" ? "?" : v }
