#!/usr/bin/env bash
# tests/slurm/cluster.sh -- a real single-node SLURM cluster for modelkin's tests.
#
#   tests/slurm/cluster.sh up             install (if missing), configure, start, self-test
#   tests/slurm/cluster.sh down [--purge] stop only what `up` started (--purge: also delete state)
#   tests/slurm/cluster.sh status         one line per daemon + sinfo; exit 0 only if all up
#
# Environment:
#   MODELKIN_SLURM_DIR         state directory (default /tmp/modelkin-slurm)
#   MODELKIN_SLURM_TIMEOUT     seconds `up` may spend after the packages are installed (default 150)
#   MODELKIN_SLURM_NO_INSTALL  1: never run apt-get; fail if the packages are missing
#   MODELKIN_SLURM_ACCOUNTING  1 (default): mariadb + slurmdbd; 0: no accounting (see below)
#   MODELKIN_SLURM_DB_PORT     TCP port of the private mariadb (default 6820, 127.0.0.1 only)
#
# Needs root and Debian/Ubuntu (apt-get).  No systemd and no cgroups needed:
# proctrack/linuxproc, task/none, jobacct_gather/none, select/cons_tres.
#
# Accounting choice: REAL ACCOUNTING (mariadb + slurmdbd) by default.
#   snakemake-executor-plugin-slurm (2.8.0) polls job status with
#   `sacct -X --clusters all --name <run-uuid> ...` whenever `sacct` is on PATH, and
#   even with `slurm-status-command: squeue` it falls back to sacct unless
#   MinJobAge >= 3 * slurm-init-seconds-before-status-checks.  `sacct --clusters all`
#   needs slurmdbd; without it the workflow never sees its jobs finish.  A real cluster
#   has accounting, so testing with it exercises the same code path users hit, and it
#   comes up in well under a minute here.  Details that matter:
#     * munged listens on the DEFAULT socket /run/munge/munge.socket.2 (sacct ignores a
#       custom AuthInfo socket); /run/munge must be mode 0755 or munged refuses it.
#       If a munged already answers on that socket it is reused (and never stopped).
#     * a private mariadbd (datadir, socket, log all under $STATE/mysql, owned by the
#       mysql user) on 127.0.0.1:$MODELKIN_SLURM_DB_PORT, so a system mariadb is untouched.
#     * the cluster is registered with `sacctmgr -i add cluster` BEFORE slurmctld starts.
#   MODELKIN_SLURM_ACCOUNTING=0 is the fallback: no database; AccountingStorageType none and
#   MinJobAge=300, and the workflow must run with `--slurm-status-command squeue`.
#
# /etc/slurm/slurm.conf becomes a symlink to the generated file: the plugin's job-step
# executor strips SLURM_* (SLURM_CONF included) before its inner srun.  An existing
# /etc/slurm/slurm.conf that is not our symlink is never replaced (up fails instead).
#
# `down` stops only daemons whose pid file is ours AND whose /proc/PID/exe is the
# expected program (/usr/sbin/slurmctld -> slurmctld-wlm etc. resolved with readlink -f).
set -uo pipefail

STATE=${MODELKIN_SLURM_DIR:-/tmp/modelkin-slurm}
TIMEOUT=${MODELKIN_SLURM_TIMEOUT:-150}
ACCOUNTING=${MODELKIN_SLURM_ACCOUNTING:-1}
DB_PORT=${MODELKIN_SLURM_DB_PORT:-6820}
CLUSTER=modelkin
PARTITION=main
MUNGE_SOCKET=/run/munge/munge.socket.2
ETC_CONF=/etc/slurm/slurm.conf

CONF=$STATE/etc/slurm.conf
DBD_CONF=$STATE/etc/slurmdbd.conf
RUN=$STATE/run
LOG=$STATE/log
MYSQL=$STATE/mysql
MYSQL_SOCK=$MYSQL/mysqld.sock

PROG=modelkin-slurm
T0=$SECONDS

say() { printf '%s: [%3ds] %s\n' "$PROG" "$((SECONDS - T0))" "$*"; }
# die REASON [LOGFILE...]: one-line reason (plus the last fatal line of the first log),
# then the tail of each log.  If `up` had started daemons, they are stopped again
# (MODELKIN_SLURM_KEEP_ON_FAILURE=1 leaves them running for debugging).
CLEANUP_ON_DIE=0
die() {
    local reason=$1 f fatal=""; shift
    if [[ -n ${1:-} && -s $1 ]]; then
        fatal=$(grep -E 'fatal|ERROR|^E: ' "$1" 2>/dev/null | tail -n1 |
            sed -E 's/^\[[^]]*\] *//; s/^[0-9-]+ +[0-9:]+ +[0-9]+ +//' | cut -c1-200)
        [[ -n $fatal ]] && reason="$reason: $fatal"
    fi
    printf '%s: ERROR: %s\n' "$PROG" "$reason" >&2
    for f in "$@"; do
        [[ -s $f ]] || continue
        printf '%s: --- last lines of %s ---\n' "$PROG" "$f" >&2
        tail -n 25 "$f" | sed 's/^/  | /' >&2
    done
    [[ -d $STATE && -w $STATE ]] && printf '%s\n' "$reason" > "$STATE/last_error" 2>/dev/null
    if ((CLEANUP_ON_DIE)) && [[ ${MODELKIN_SLURM_KEEP_ON_FAILURE:-0} != 1 ]]; then
        CLEANUP_ON_DIE=0
        printf '%s: stopping the daemons this run started (MODELKIN_SLURM_KEEP_ON_FAILURE=1 keeps them)\n' "$PROG" >&2
        cmd_down >&2
        [[ -d $STATE && -w $STATE ]] && printf '%s\n' "$reason" > "$STATE/last_error" 2>/dev/null
    fi
    exit 1
}

deadline_left() { echo $((T_DEADLINE - SECONDS)); }

# Client commands always see our configuration, whatever the caller's environment.
slurm_env() { env -u SLURM_JOB_ID -u SLURM_JOBID SLURM_CONF="$CONF" "$@"; }

# ---------------------------------------------------------------- pid handling
# pid_of PIDFILE EXPECTED_PROGRAM -> prints pid, returns 0 if that pid runs that program
pid_of() {
    local pf=$1 want pid exe
    want=$(readlink -f "$2" 2>/dev/null) || return 1
    [[ -r $pf ]] || return 1
    pid=$(tr -dc '0-9' < "$pf" 2>/dev/null)
    [[ -n $pid && -d /proc/$pid ]] || return 1
    exe=$(readlink -f "/proc/$pid/exe" 2>/dev/null) || return 1
    exe=${exe% (deleted)}
    [[ $exe == "$want" ]] || return 1
    # a zombie is not running
    [[ $(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null) != Z ]] || return 1
    echo "$pid"
}

# stop_pid NAME PIDFILE PROGRAM: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
    local name=$1 pf=$2 prog=$3 pid i
    if ! pid=$(pid_of "$pf" "$prog"); then
        rm -f "$pf"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 300; i++)); do
        [[ -d /proc/$pid ]] || break
        [[ $(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null) == Z ]] && break
        sleep 0.1
    done
    if [[ -d /proc/$pid ]] && pid_of "$pf" "$prog" >/dev/null; then
        say "$name (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
        sleep 0.5
    fi
    rm -f "$pf"
    say "stopped $name (pid $pid)"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.5 s
wait_for() {
    local limit=$1; shift
    local end=$((SECONDS + limit))
    while ((SECONDS < end)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    "$@" >/dev/null 2>&1
}

# ------------------------------------------------------------------ packages
need_packages() {
    local p missing=()
    local cmds=(munged slurmctld slurmd srun sbatch sinfo)
    [[ $ACCOUNTING == 1 ]] && cmds+=(slurmdbd mariadbd mariadb-install-db sacct sacctmgr)
    for p in "${cmds[@]}"; do
        command -v "$p" >/dev/null 2>&1 || [[ -x /usr/sbin/$p ]] || missing+=("$p")
    done
    # the plugin directories come with slurm-wlm-basic-plugins / slurm-wlm-mysql-plugin
    [[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/proctrack_linuxproc.so ||
        -n $(find /usr/lib -name proctrack_linuxproc.so -print -quit 2>/dev/null) ]] ||
        missing+=(slurm-plugins)
    if [[ $ACCOUNTING == 1 ]]; then
        [[ -n $(find /usr/lib -name accounting_storage_mysql.so -print -quit 2>/dev/null) ]] ||
            missing+=(slurm-mysql-plugin)
    fi
    ((${#missing[@]} == 0)) && return 1
    say "missing: ${missing[*]}"
    return 0
}

install_packages() {
    export PATH=$PATH:/usr/sbin:/sbin
    need_packages || return 0
    [[ ${MODELKIN_SLURM_NO_INSTALL:-0} == 1 ]] &&
        die "SLURM packages are not installed and MODELKIN_SLURM_NO_INSTALL=1"
    command -v apt-get >/dev/null 2>&1 ||
        die "SLURM packages are not installed and apt-get is not available (not Debian/Ubuntu?)"
    local pkgs=(slurm-wlm munge)
    [[ $ACCOUNTING == 1 ]] && pkgs+=(mariadb-server slurmdbd)
    mkdir -p "$LOG"
    local aptlog=$LOG/apt.log policy=/usr/sbin/policy-rc.d made_policy=0
    # Without a policy-rc.d, the packages' postinst would start the distribution's
    # munge/mariadb/slurm services through /etc/init.d; we start our own.
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
    fi
    say "installing ${pkgs[*]} with apt-get (log: $aptlog)"
    local ok=1
    if ! timeout 600 apt-get update >"$aptlog" 2>&1; then
        ok=0
    elif ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${pkgs[@]}" >>"$aptlog" 2>&1; then
        ok=0
    fi
    ((made_policy)) && rm -f "$policy"
    ((ok)) || die "apt-get could not install ${pkgs[*]}" "$aptlog"
    need_packages && die "packages still missing after apt-get install" "$aptlog"
    say "packages installed ($((SECONDS - T0)) s)"
}

# ------------------------------------------------------------------- configs
CHANGED=0
write_if_changed() { # PATH MODE  (content on stdin); sets CHANGED=1 if PATH changed
    local tmp
    tmp=$(mktemp "$1.XXXXXX") || die "cannot write $1"
    cat > "$tmp"
    chmod "$2" "$tmp"
    if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$1"
        CHANGED=1
    fi
}

generate() {
    mkdir -p "$STATE/etc" "$RUN" "$LOG" "$STATE/spool/ctld" "$STATE/spool/slurmd" "$STATE/munge" "$STATE/tmp" ||
        die "cannot create state directory $STATE"
    chmod 755 "$STATE" "$STATE/etc" "$RUN" "$LOG"
    chmod 700 "$STATE/munge"

    local host cpus mem_kb mem_mb
    host=$(hostname -s 2>/dev/null || hostname)
    [[ -n $host ]] || die "cannot determine the hostname"
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
    mem_kb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)
    # a bit under MemTotal: 95 %, at least 256 MiB left for the OS
    mem_mb=$((mem_kb / 1024 * 95 / 100))
    ((mem_kb / 1024 - mem_mb < 256)) && mem_mb=$((mem_kb / 1024 - 256))
    NODE=$host

    local acct_lines
    if [[ $ACCOUNTING == 1 ]]; then
        acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819"
    else
        acct_lines="AccountingStorageType=accounting_storage/none"
    fi

    write_if_changed "$CONF" 644 <<EOF
# Generated by modelkin tests/slurm/cluster.sh -- do not edit; re-run \`up\` instead.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no systemd, no cgroups
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
# jobs without --mem get 1 GiB per CPU instead of the whole node
DefMemPerCPU=1024
# finished jobs stay visible to squeue for 5 min (squeue-based status polling needs >= 120 s)
MinJobAge=300
InactiveLimit=0
KillWait=10
Waittime=0
SlurmctldTimeout=120
SlurmdTimeout=300
$acct_lines
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

    if [[ $ACCOUNTING == 1 ]]; then
        if [[ ! -s $STATE/etc/dbpass ]]; then
            (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$STATE/etc/dbpass")
        fi
        DB_PASS=$(cat "$STATE/etc/dbpass")
        write_if_changed "$DBD_CONF" 600 <<EOF
# Generated by modelkin tests/slurm/cluster.sh
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=$host
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    fi

    if [[ ! -s $STATE/munge/munge.key ]]; then
        dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none ||
            die "cannot create the munge key"
    fi
    chmod 600 "$STATE/munge/munge.key"

    # /etc/slurm/slurm.conf -> our file (the plugin strips SLURM_CONF for its inner srun)
    mkdir -p /etc/slurm
    if [[ -L $ETC_CONF ]]; then
        [[ $(readlink "$ETC_CONF") == "$CONF" ]] || ln -sfn "$CONF" "$ETC_CONF"
    elif [[ -e $ETC_CONF ]]; then
        die "$ETC_CONF exists and is not a symlink made by this script; refusing to replace it"
    else
        ln -s "$CONF" "$ETC_CONF" || die "cannot create the symlink $ETC_CONF"
    fi
}

# ------------------------------------------------------------------- daemons
munge_works() { munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }

start_munged() {
    if pid_of "$RUN/munged.pid" /usr/sbin/munged >/dev/null && munge_works; then
        return 0
    fi
    if munge_works; then
        say "reusing the munged already answering on $MUNGE_SOCKET"
        rm -f "$RUN/munged.pid"
        return 0
    fi
    mkdir -p /run/munge && chmod 0755 /run/munge
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    /usr/sbin/munged --socket="$MUNGE_SOCKET" --key-file="$STATE/munge/munge.key" \
        --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
        --seed-file="$STATE/munge/munged.seed" </dev/null >>"$LOG/munged.start" 2>&1 ||
        die "munged failed to start" "$LOG/munged.start" "$LOG/munged.log"
    wait_for 15 munge_works || die "munged does not answer on $MUNGE_SOCKET" "$LOG/munged.log"
    say "munged up (pid $(cat "$RUN/munged.pid" 2>/dev/null))"
}

mysql_cli() { mariadb --no-defaults -S "$MYSQL_SOCK" -u root "$@"; }
mysql_alive() { mysql_cli -N -e 'SELECT 1' 2>/dev/null | grep -qx 1; }

start_mariadb() {
    local mpid=$MYSQL/mariadbd.pid errlog=$MYSQL/mariadb.err
    if ! pid_of "$mpid" /usr/sbin/mariadbd >/dev/null; then
        mkdir -p "$MYSQL"
        chown mysql:mysql "$MYSQL" && chmod 750 "$MYSQL" || die "cannot chown $MYSQL to mysql"
        if [[ ! -d $MYSQL/data/mysql ]]; then
            rm -rf "$MYSQL/data"
            mariadb-install-db --no-defaults --user=mysql --datadir="$MYSQL/data" \
                --auth-root-authentication-method=socket --skip-test-db \
                --skip-name-resolve >"$LOG/mariadb-install.log" 2>&1 ||
                die "mariadb-install-db failed" "$LOG/mariadb-install.log"
        fi
        rm -f "$MYSQL_SOCK"
        setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$MYSQL/data" \
            --socket="$MYSQL_SOCK" --pid-file="$mpid" --log-error="$errlog" \
            --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
            --innodb-buffer-pool-size=256M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
            --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 \
            --max-allowed-packet=64M </dev/null >>"$LOG/mariadb.start" 2>&1 &
        disown
    fi
    wait_for "$(deadline_left)" mysql_alive || die "mariadbd did not come up" "$errlog" "$LOG/mariadb.start"
    mysql_cli -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" \
        >"$LOG/mariadb-grant.log" 2>&1 || die "cannot create the slurm database user" "$LOG/mariadb-grant.log"
    say "mariadbd ready (pid $(cat "$mpid" 2>/dev/null), 127.0.0.1:$DB_PORT)"
}

dbd_alive() { slurm_env sacctmgr -n -P list cluster format=cluster >/dev/null 2>&1; }

start_slurmdbd() {
    if ! pid_of "$RUN/slurmdbd.pid" /usr/sbin/slurmdbd >/dev/null; then
        slurm_env /usr/sbin/slurmdbd </dev/null >>"$LOG/slurmdbd.start" 2>&1 ||
            die "slurmdbd failed to start" "$LOG/slurmdbd.start" "$LOG/slurmdbd.log"
    fi
    local end=$((SECONDS + $(deadline_left)))
    while ((SECONDS < end)); do
        dbd_alive && break
        [[ -s $RUN/slurmdbd.pid ]] && ! pid_of "$RUN/slurmdbd.pid" /usr/sbin/slurmdbd >/dev/null &&
            die "slurmdbd died during start-up" "$LOG/slurmdbd.log" "$LOG/slurmdbd.start"
        sleep 0.5
    done
    dbd_alive || die "slurmdbd does not answer sacctmgr" "$LOG/slurmdbd.log" "$LOG/slurmdbd.start"
    if ! slurm_env sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
        slurm_env sacctmgr -i add cluster "$CLUSTER" >"$LOG/sacctmgr.log" 2>&1 ||
            die "sacctmgr could not add cluster $CLUSTER" "$LOG/sacctmgr.log" "$LOG/slurmdbd.log"
    fi
    say "slurmdbd ready (pid $(cat "$RUN/slurmdbd.pid" 2>/dev/null)), cluster '$CLUSTER' registered"
}

node_state() { slurm_env timeout 10 sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n1; }
node_ready() { [[ $(node_state) =~ ^(idle|mix|alloc|comp)$ ]]; }

start_slurm_daemon() { # NAME
    local name=$1 pf=$RUN/$1.pid
    if pid_of "$pf" "/usr/sbin/$name" >/dev/null; then
        return 0
    fi
    rm -f "$pf"
    slurm_env "/usr/sbin/$name" </dev/null >>"$LOG/$name.start" 2>&1 ||
        die "$name failed to start" "$LOG/$name.start" "$LOG/$name.log"
    wait_for 15 pid_of "$pf" "/usr/sbin/$name" ||
        die "$name died during start-up" "$LOG/$name.log" "$LOG/$name.start"
    say "$name up (pid $(cat "$pf"))"
}

self_test() {
    local left out jid st
    left=$(deadline_left)
    ((left > 5)) || left=5
    # the node must be idle (or busy with someone's jobs) and both daemons alive
    local end=$((SECONDS + left))
    while ((SECONDS < end)); do
        pid_of "$RUN/slurmctld.pid" /usr/sbin/slurmctld >/dev/null ||
            die "slurmctld died" "$LOG/slurmctld.log" "$LOG/slurmctld.start"
        pid_of "$RUN/slurmd.pid" /usr/sbin/slurmd >/dev/null ||
            die "slurmd died" "$LOG/slurmd.log" "$LOG/slurmd.start"
        node_ready && break
        sleep 0.5
    done
    node_ready || die "node $NODE is '$(node_state)', not idle, after ${TIMEOUT}s" \
        "$LOG/slurmctld.log" "$LOG/slurmd.log"
    say "node $NODE $(node_state)"

    left=$(deadline_left); ((left > 20)) || left=20
    out=$(cd "$STATE/tmp" && timeout "$left" env SLURM_CONF="$CONF" srun -N1 -n1 -t 1 --mem=64 -J modelkin-selftest hostname 2>&1)
    [[ $? == 0 && -n $out ]] ||
        die "srun hostname failed: $(echo "$out" | tail -n1)" "$LOG/slurmctld.log" "$LOG/slurmd.log"

    say "srun hostname ok"

    out=$(cd "$STATE/tmp" && timeout 30 env SLURM_CONF="$CONF" sbatch --parsable -t 1 --mem=64 \
        -J modelkin-selftest -o "$STATE/tmp/selftest-%j.out" --wrap 'hostname' 2>&1)
    [[ $? == 0 ]] ||
        die "sbatch --wrap hostname failed: $(echo "$out" | tail -n1)" "$LOG/slurmctld.log" "$LOG/slurmd.log"
    jid=$(echo "$out" | grep -Eo '^[0-9]+' | head -n1)
    [[ -n $jid ]] || die "sbatch printed no job id: $(echo "$out" | tail -n1)"

    # Wait for the job to finish, asking what the snakemake plugin asks:
    # `sacct -X --clusters all` with accounting, `squeue --states=all` without.
    left=$(deadline_left); ((left > 20)) || left=20
    end=$((SECONDS + left))
    while ((SECONDS < end)); do
        if [[ $ACCOUNTING == 1 ]]; then
            st=$(slurm_env sacct -X -n -P --clusters all -j "$jid" -o State 2>/dev/null | head -n1)
        else
            st=$(slurm_env squeue -h --states=all -j "$jid" -o %T 2>/dev/null | head -n1)
        fi
        [[ $st =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL) ]] && break
        sleep 0.5
    done
    [[ $st == COMPLETED ]] ||
        die "sbatch job $jid is '${st:-unknown}', not COMPLETED, per $([[ $ACCOUNTING == 1 ]] && echo sacct || echo squeue)" \
            "$LOG/slurmctld.log" "$LOG/slurmd.log" "$LOG/slurmdbd.log"
    [[ -s $STATE/tmp/selftest-$jid.out ]] || die "sbatch job $jid wrote no output"
    rm -f "$STATE/tmp/selftest-$jid.out"
    say "sbatch --wrap hostname ok (job $jid COMPLETED per $([[ $ACCOUNTING == 1 ]] && echo sacct || echo squeue))"
}

cmd_up() {
    [[ $(id -u) == 0 ]] || die "must run as root (uid is $(id -u)): it installs packages and starts daemons"
    [[ $ACCOUNTING == 0 || $ACCOUNTING == 1 ]] || die "MODELKIN_SLURM_ACCOUNTING must be 0 or 1"
    install_packages
    T_DEADLINE=$((SECONDS + TIMEOUT))
    generate
    rm -f "$STATE/last_error"
    CLEANUP_ON_DIE=1
    if ((CHANGED)); then
        # daemons still running with an older configuration are restarted
        stop_pid slurmd "$RUN/slurmd.pid" /usr/sbin/slurmd
        stop_pid slurmctld "$RUN/slurmctld.pid" /usr/sbin/slurmctld
        stop_pid slurmdbd "$RUN/slurmdbd.pid" /usr/sbin/slurmdbd
    fi
    start_munged
    if [[ $ACCOUNTING == 1 ]]; then
        start_mariadb
        start_slurmdbd
    fi
    start_slurm_daemon slurmctld
    start_slurm_daemon slurmd
    self_test
    say "up in $((SECONDS - T0)) s: node $NODE $(node_state), partition $PARTITION, accounting $([[ $ACCOUNTING == 1 ]] && echo slurmdbd || echo none), state $STATE"
}

cmd_down() {
    local purge=0
    [[ ${1:-} == --purge ]] && purge=1
    if [[ ! -d $STATE ]]; then
        say "not up (no $STATE)"
        return 0
    fi
    [[ $(id -u) == 0 ]] || die "must run as root (uid is $(id -u))"
    # Cancel whatever still runs on our cluster so slurmstepd processes end with it.
    if pid_of "$RUN/slurmctld.pid" /usr/sbin/slurmctld >/dev/null; then
        local jobs i
        jobs=$(slurm_env squeue -h -o %i -t PD,R,CG,S 2>/dev/null | tr '\n' ' ')
        if [[ -n ${jobs// /} ]]; then
            say "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            slurm_env scancel $jobs >/dev/null 2>&1
            for ((i = 0; i < 40; i++)); do
                [[ -z $(slurm_env squeue -h -o %i -t PD,R,CG,S 2>/dev/null) ]] && break
                sleep 0.5
            done
        fi
    fi
    stop_pid slurmd "$RUN/slurmd.pid" /usr/sbin/slurmd
    stop_pid slurmctld "$RUN/slurmctld.pid" /usr/sbin/slurmctld
    stop_pid slurmdbd "$RUN/slurmdbd.pid" /usr/sbin/slurmdbd
    stop_pid mariadbd "$MYSQL/mariadbd.pid" /usr/sbin/mariadbd
    stop_pid munged "$RUN/munged.pid" /usr/sbin/munged
    if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$CONF" ]]; then
        rm -f "$ETC_CONF"
    fi
    if ((purge)); then
        rm -rf "$STATE"
        say "down; removed $STATE"
    else
        say "down (state kept in $STATE; 'down --purge' removes it)"
    fi
}

cmd_status() {
    local rc=0 name pf prog pid
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        pf=$RUN/$name.pid prog=/usr/sbin/$name
        [[ $name == mariadbd ]] && pf=$MYSQL/mariadbd.pid
        if [[ $ACCOUNTING == 0 && ($name == mariadbd || $name == slurmdbd) ]]; then
            continue
        fi
        if pid=$(pid_of "$pf" "$prog"); then
            say "$name running (pid $pid)"
        elif [[ $name == munged ]] && munge_works; then
            say "munged running (not started by this script)"
        else
            say "$name stopped"
            rc=1
        fi
    done
    if [[ -f $CONF ]] && out=$(timeout 5 env SLURM_CONF="$CONF" sinfo -h -o '%P %a %D %t %c %m' 2>/dev/null) && [[ -n $out ]]; then
        say "sinfo: $out"
    else
        say "sinfo: no answer"
        rc=1
    fi
    [[ -s $STATE/last_error ]] && say "last error: $(cat "$STATE/last_error")"
    return $rc
}

export PATH=$PATH:/usr/sbin:/sbin
case ${1:-} in
up) cmd_up ;;
down) shift; cmd_down "$@" ;;
status) cmd_status ;;
*)
    echo "usage: $0 up | down [--purge] | status" >&2
    exit 2
    ;;
esac
