#!/usr/bin/env bash
# A real, single-node SLURM cluster on this machine, for tests/test_slurm.py and by hand.
#
#   bash tests/slurm/cluster.sh install   # apt packages slurm-wlm + munge (no-op when installed)
#   bash tests/slurm/cluster.sh start     # write /etc/slurm/{slurm,gres}.conf, start munged,
#                                         # slurmctld, slurmd; wait until the node is idle
#   bash tests/slurm/cluster.sh status    # recorded daemons, sinfo, squeue (exit 3 if stopped)
#   bash tests/slurm/cluster.sh stop      # cancel our jobs, kill exactly the recorded PIDs,
#                                         # restore /etc/slurm, delete the state dir
#
# Needs root. Everything idempotent: `start` on a running cluster only re-checks it, `stop` on a
# stopped one does nothing. Debian 12 ships SLURM 22.05; see ../shared/notes/stack.md
# ("SLURM, for real, on one machine") for why the configuration looks the way it does:
# * the config must live at /etc/slurm/slurm.conf (the executor plugin's jobstep drops SLURM_CONF
#   before its nested srun), so an existing one is backed up and restored by `stop`;
# * no slurmdbd: job status comes from squeue (MinJobAge=300 keeps finished jobs visible, i.e.
#   >= 3x the plugin's initial status wait); the Snakemake profile sets slurm-status-command;
# * two fake GPUs (gres gpu:fake:2 on File=/dev/null,/dev/zero) so that GPU requests really schedule,
#   two GPU jobs at a time on the two cores (one GPU serialised every training and evaluation job);
# * a private munged (own key and socket in the state dir): a system munge is never touched.
# Daemons run in their own sessions (setsid), so a Ctrl-C of the caller does not hit them; they
# listen on 0.0.0.0:6817-6818 (SLURM 22.05 cannot bind loopback only), all traffic stays local.
set -euo pipefail

STATE=${MASKDIFF_SLURM_STATE:-/tmp/maskdiff-slurm}
PARTITION=${MASKDIFF_SLURM_PARTITION:-ci}
CLUSTER=maskdiff-ci
CONF_DIR=/etc/slurm
MARKER="# written by maskdiff tests/slurm/cluster.sh"
PACKAGES=(slurm-wlm munge)
DAEMONS=(munged slurmctld slurmd)   # start order; stop goes in reverse

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
need_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }

installed() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null
}

cmd_install() {
    if installed; then
        log "packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    need_root
    command -v apt-get >/dev/null || die "apt-get not found (Debian/Ubuntu only)"
    # Debian's postinst scripts would start munge/slurm services: forbid that for the duration of
    # the install (this script starts its own daemons), unless a policy is already in place.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created_policy=1
    fi
    local rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null &&
        apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" </dev/null
    } || rc=$?
    if [[ $created_policy == 1 ]]; then rm -f "$policy"; fi
    [[ $rc == 0 ]] || die "apt-get failed ($rc)"
    installed || die "packages still missing after apt-get install"
    log "installed: ${PACKAGES[*]}"
}

pid_of() { cat "$STATE/pids/$1" 2>/dev/null || true; }

# Alive and still the program we started (guards against PID reuse).
alive() {
    local name=$1 pid
    pid=$(pid_of "$name")
    [[ -n $pid ]] && [[ -d /proc/$pid ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]
}

node_name() { hostname -s; }

node_state() { sinfo -h -N -n "$(node_name)" -o '%T' 2>/dev/null | head -n1; }

wait_idle() {
    local state="" i
    for i in $(seq 1 120); do
        state=$(node_state || true)
        case $state in
            idle|mixed|allocated) return 0 ;;
            down*|drain*|fail*)
                # A node that was down in a previous life (ReturnToService=2 normally handles it).
                scontrol update nodename="$(node_name)" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    log "node never became idle (state: '${state:-none}'); last lines of the logs:"
    tail -n 20 "$STATE"/log/*.log >&2 || true
    return 1
}

backup_conf() {
    local name=$1 file=$CONF_DIR/$1
    mkdir -p "$STATE/backup"
    [[ -e $STATE/backup/$name || -e $STATE/backup/$name.absent ]] && return 0
    if [[ -e $file ]] && ! grep -qF "$MARKER" "$file"; then
        cp -a "$file" "$STATE/backup/$name"
    else
        touch "$STATE/backup/$name.absent"
    fi
}

restore_conf() {
    local name=$1 file=$CONF_DIR/$1
    if [[ -e $STATE/backup/$name ]]; then
        cp -a "$STATE/backup/$name" "$file"
        log "restored the original $file"
    elif [[ -e $file ]] && grep -qF "$MARKER" "$file"; then
        rm -f "$file"
    fi
}

write_conf() {
    local node cpus mem
    node=$(node_name)
    cpus=$(nproc)
    (( cpus >= 2 )) || cpus=2   # the workflow's rules use 2 threads; config_overrides allows it
    mem=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    # MASKDIFF_SLURM_MEMORY_KILL=1: job accounting polls every job's memory each second and kills a
    # job over its request (--mem), as a cluster that polices memory does; off by default, because
    # the rehearsal's jobs are sized for the DAG's logic, not for their memory.
    local acct="JobAcctGatherType=jobacct_gather/none"
    if [[ ${MASKDIFF_SLURM_MEMORY_KILL:-0} == 1 ]]; then
        acct=$'JobAcctGatherType=jobacct_gather/linux\nJobAcctGatherParams=OverMemoryKill\nJobAcctGatherFrequency=task=1'
    fi
    mkdir -p "$CONF_DIR"
    cat > "$CONF_DIR/slurm.conf" <<EOF
$MARKER; \`cluster.sh stop\` removes it
# (and restores any previous file). State, logs and the munge socket live in $STATE.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
MailProg=/bin/true
$acct
AccountingStorageType=accounting_storage/none
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:fake:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    cat > "$CONF_DIR/gres.conf" <<EOF
$MARKER; \`cluster.sh stop\` removes it.
# Two fake GPUs: without File= the node drains.
AutoDetect=off
NodeName=$node Name=gpu Type=fake File=/dev/null,/dev/zero
EOF
}

# Start one daemon in the foreground of its own session; record its PID.
launch() {
    local name=$1; shift
    # 9>&-: the daemon must not inherit (and hold forever) the start/stop lock.
    setsid "$@" >>"$STATE/log/$name.out" 2>&1 </dev/null 9>&- &
    local pid=$!
    echo "$pid" > "$STATE/pids/$name"
    local i
    for i in $(seq 1 20); do
        alive "$name" && return 0
        [[ -d /proc/$pid ]] || break
        sleep 0.1
    done
    alive "$name" || { tail -n 20 "$STATE/log/$name.out" >&2 || true; die "$name did not start"; }
}

all_alive() {
    local d
    for d in "${DAEMONS[@]}"; do alive "$d" || return 1; done
}

cmd_start() {
    need_root
    installed || die "SLURM is not installed: run '$0 install' first"
    if all_alive; then
        wait_idle || die "cluster running but node not idle"
        log "already running (state dir $STATE)"
        return 0
    fi
    # A partial cluster (e.g. a daemon died): stop what is ours, then start afresh.
    stop_daemons
    local t0=$SECONDS
    mkdir -p "$STATE"/{pids,run,log,ctld,spool,munge}
    chmod 700 "$STATE/munge"
    backup_conf slurm.conf
    backup_conf gres.conf
    write_conf

    local key=$STATE/munge/munge.key
    if [[ ! -s $key ]]; then
        dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
        chmod 400 "$key"
    fi
    launch munged munged --foreground --force --key-file="$key" --socket="$STATE/munge/munge.socket" \
        --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed"
    local i
    for i in $(seq 1 50); do
        munge -n -S "$STATE/munge/munge.socket" 2>/dev/null | unmunge -S "$STATE/munge/munge.socket" >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n -S "$STATE/munge/munge.socket" | unmunge -S "$STATE/munge/munge.socket" >/dev/null || die "munge does not work"

    # -c: no state recovery (each start is a fresh cluster), -i: ignore stale state files.
    launch slurmctld slurmctld -D -c -i
    launch slurmd slurmd -D
    wait_idle || die "node did not come up"
    log "started in $((SECONDS - t0)) s: partition '$PARTITION', node $(node_name), state dir $STATE"
    sinfo -o '%P %a %D %T %c %m %G' >&2
}

# Kill exactly the PIDs recorded by `start` (TERM, then KILL after 20 s), then forget them.
stop_daemons() {
    local idx name pid i
    for ((idx = ${#DAEMONS[@]} - 1; idx >= 0; idx--)); do
        name=${DAEMONS[idx]}
        pid=$(pid_of "$name")
        if alive "$name"; then
            kill -TERM "$pid" 2>/dev/null || true
            for i in $(seq 1 200); do
                [[ -d /proc/$pid ]] || break
                sleep 0.1
            done
            if [[ -d /proc/$pid ]]; then
                log "$name ($pid) ignored SIGTERM; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                for i in $(seq 1 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
            fi
            log "stopped $name ($pid)"
        fi
        rm -f "$STATE/pids/$name"
    done
}

cmd_stop() {
    need_root
    if [[ ! -d $STATE ]]; then
        log "not running (no state dir $STATE)"
        return 0
    fi
    # Jobs first (their slurmstepd and processes are not daemons we recorded): cancel and wait.
    if alive slurmctld && alive slurmd; then
        scancel --quiet --full --state=PENDING >/dev/null 2>&1 || true
        scancel --quiet --full >/dev/null 2>&1 || true
        local i
        for i in $(seq 1 60); do
            [[ -z $(squeue -h -t PD,R,CG,S 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
    stop_daemons
    restore_conf slurm.conf
    restore_conf gres.conf
    rm -rf "$STATE" "$STATE.lock"
    log "stopped; /etc/slurm restored, state dir removed"
}

cmd_status() {
    local d running=1
    for d in "${DAEMONS[@]}"; do
        if alive "$d"; then echo "$d: running (pid $(pid_of "$d"))"; else echo "$d: stopped"; running=0; fi
    done
    if [[ $running == 1 ]]; then
        sinfo -o '%P %a %D %T %c %m %G'
        squeue
        return 0
    fi
    return 3
}

main() {
    local cmd=${1:-}
    case $cmd in
        install) cmd_install ;;
        start|stop)
            mkdir -p "$(dirname "$STATE")"
            # Serialise concurrent start/stop calls.
            exec 9>"$STATE.lock"
            flock -w 120 9 || die "another cluster.sh start/stop holds $STATE.lock"
            "cmd_$cmd"
            ;;
        status) cmd_status ;;
        *) echo "usage: $0 {install|start|stop|status}" >&2; exit 2 ;;
    esac
}

main "$@"
