# The login-storm curves, from storm.dat written by report.awk. run.sh calls:
#   gnuplot -e "term_spec='pngcairo size 1200,600'; outfile='...'; datfile='...'" storm.gp
# storm.dat columns: 1 U, 2 plain at once (all connected and subscribed, s), 3-5 plugin at once
# (all connected, all logged in, every client holds all U users), 6 plain paced, 7 plugin paced
# (all hold all U users), 8 the same following chat/users/+, 9-10 chat/contacts snapshots
# published (at once, paced), 11-12 directory MB delivered to all clients (at once, paced).
# '?' marks a missing value (a storm that did not complete).
set terminal @term_spec
set output outfile
set datafile missing '?'
set multiplot layout 1,2 title "Login storm: U clients connect, subscribe the directory and log in"
set logscale xy
set grid
set key top left Left reverse font ",8" spacing 0.9
set xlabel "U (users logging in together)"
set xrange [70:14000]

set title "time until every client holds all U users"
set ylabel "seconds from the first connect()"
set arrow 1 from graph 0, first 10 to graph 1, first 10 nohead dashtype 2 lc rgb "#cc0000"
set label 1 "target at U = 10,000: 10 s" at graph 0.62, first 7 tc rgb "#cc0000" font ",8"
set yrange [0.005:2000]
plot datfile using 1:5 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "plugin, all at once (chat/contacts)", \
     datfile using 1:7 with linespoints lw 2 pt 5 lc rgb "#ff7f0e" title "plugin, paced (chat/contacts)", \
     datfile using 1:8 with linespoints lw 1 pt 9 lc rgb "#9467bd" title "plugin, paced, following chat/users/+", \
     datfile using 1:3 with linespoints lw 1 pt 6 dt 3 lc rgb "#1f77b4" title "plugin, all at once: all CONNACKed", \
     datfile using 1:2 with linespoints lw 1 pt 13 lc rgb "#2ca02c" title "plain, all at once: connected + subscribed", \
     datfile using 1:6 with linespoints lw 1 pt 12 lc rgb "#17becf" title "plain, paced: connected + subscribed"

unset arrow 1
unset label 1
set title "directory traffic (chat/contacts)"
set ylabel "MB delivered to all clients"
set yrange [0.1:1e6]
set y2range [1:1000]
set y2label "snapshots published during the storm"
set y2tics
set logscale y2
set ytics nomirror
# Every client must receive every user at least once: one full snapshot each, ~29 bytes a user.
lower(x) = x * x * 29 / 1048576
plot datfile using 1:11 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "MB, all at once", \
     datfile using 1:12 with linespoints lw 2 pt 5 lc rgb "#ff7f0e" title "MB, paced", \
     lower(x) with lines dt 2 lc rgb "#555555" title "lower bound: one snapshot per client (U^2)", \
     datfile using 1:9 axes x1y2 with points pt 6 ps 1.5 lc rgb "#1f77b4" title "snapshots, all at once (right)", \
     datfile using 1:10 axes x1y2 with points pt 4 ps 1.5 lc rgb "#ff7f0e" title "snapshots, paced (right)"
unset multiplot
