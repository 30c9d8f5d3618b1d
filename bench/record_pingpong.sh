#!/bin/bash
# record_pingpong.sh OUT.dat [SECONDS] [extra trace-cmd record options...]   (env PAIRS=2)
# Records a context-switch-heavy trace.dat for bench/test_tracedat.py: pairs of processes
# ping-ponging one byte over pipes (every hop is a wakeup and two switches), with
# sched_switch / sched_waking / sched_wakeup / irq events, into a trace instance of its own
# (-B ftfast) so other users of tracefs are left alone.  Needs root, tracefs and trace-cmd.
# trace-cmd writes knobs some hosts forbid (ftrace_enabled, set_ftrace_*): it runs in a
# private mount namespace where those files are bind-mounted dummies.
set -euo pipefail
OUT=${1:?usage: record_pingpong.sh OUT.dat [SECONDS] [trace-cmd options]}
SECS=${2:-6}
shift $(( $# >= 2 ? 2 : 1 ))
T=/sys/kernel/tracing
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/pp.c" <<'C'
#include <stdlib.h>
#include <unistd.h>
#include <signal.h>
int main(int argc, char **argv) {
    int pairs = argc > 1 ? atoi(argv[1]) : 2, secs = argc > 2 ? atoi(argv[2]) : 5;
    for (int p = 0; p < pairs; p++) {
        int a[2], b[2];
        if (pipe(a) || pipe(b)) return 1;
        if (fork() == 0) { char c; alarm(secs); for (;;) { if (read(a[0], &c, 1) != 1) _exit(0); write(b[1], &c, 1); } }
        if (fork() == 0) { char c = 'x'; alarm(secs); for (;;) { write(a[1], &c, 1); if (read(b[0], &c, 1) != 1) _exit(0); } }
    }
    sleep(secs + 1);
    return 0;
}
C
gcc -O2 -o "$WORK/pingpong" "$WORK/pp.c"
cat > "$WORK/ns.sh" <<SH
#!/bin/sh
D="$WORK/dummy"; mkdir -p "\$D"
[ -e $T/tracing_on ] || mount -t tracefs nodev $T
# the instance exists before trace-cmd so its forbidden knobs can be covered too
mkdir -p $T/instances/ftfast
I=$T/instances/ftfast
for f in \$I/set_ftrace_filter \$I/set_ftrace_notrace \$I/set_ftrace_pid \$I/set_ftrace_notrace_pid \$I/set_graph_function \$I/set_graph_notrace /proc/sys/kernel/ftrace_enabled $T/set_ftrace_filter $T/set_ftrace_notrace $T/set_ftrace_pid $T/set_ftrace_notrace_pid $T/set_graph_function $T/set_graph_notrace $T/max_graph_depth; do
  [ -e "\$f" ] || continue
  n="\$D/\$(echo "\$f" | tr / _)"; : > "\$n"
  [ "\$f" = /proc/sys/kernel/ftrace_enabled ] && echo 1 > "\$n"
  mount --bind "\$n" "\$f"
done
exec "\$@"
SH
chmod +x "$WORK/ns.sh"
unshare -m --propagation private "$WORK/ns.sh" \
  trace-cmd record -q -B ftfast -b 65536 -e sched:sched_switch -e sched:sched_waking \
  -e sched:sched_wakeup -e sched:sched_wakeup_new -e sched:sched_migrate_task \
  -e irq:irq_handler_entry -e irq:irq_handler_exit -e irq:softirq_entry -e irq:softirq_exit \
  "$@" -o "$OUT" -- "$WORK/pingpong" "${PAIRS:-2}" "$SECS" >/dev/null
# trace-cmd removes the instance it created; remove ours too (in a namespace of its own)
unshare -m --propagation private sh -c "[ -e $T/tracing_on ] || mount -t tracefs nodev $T; rmdir $T/instances/ftfast 2>/dev/null || true"
