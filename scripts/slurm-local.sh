#!/usr/bin/env bash
# A real Slurm cluster on this one machine, for the Slurm executor's tests and benchmarks:
# munged, slurmctld and three slurmd (nodes n1..n3, 2 CPUs each) in the foreground under
# setsid, without systemd or cgroups. Needs root (it installs slurm-wlm and munge with apt
# when they are missing).
#
#   scripts/slurm-local.sh start   # prints `export SLURM_CONF=...` once the nodes are idle
#   scripts/slurm-local.sh stop    # stops exactly the daemons `start` recorded
#   scripts/slurm-local.sh status
#
# Partitions: `debug` (the default, no time limit) and `short` (at most one minute, limits
# enforced at submission: what a test of a refused escalation needs).
#
# State (config, spool, logs, PIDs) lives in $LULC_SLURM_DIR (default /tmp/lulc-slurm).
set -euo pipefail
DIR=${LULC_SLURM_DIR:-/tmp/lulc-slurm}
NODES=${LULC_SLURM_NODES:-3}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

log() { echo "slurm-local: $*" >&2; }

install() {
  if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
    return
  fi
  log "installing slurm-wlm and munge"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
  # A fresh cluster: no jobs or node states of an earlier one.
  rm -rf "$DIR"/spool "$DIR"/state
  mkdir -p "$DIR"/{spool,state,log,run}
  local last=$((17000 + NODES))
  cat >"$CONF" <<EOF
ClusterName=lulc-local
SlurmctldHost=localhost
SlurmctldPort=16817
SlurmdPort=17001
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
MinJobAge=300
MaxArraySize=5001
MaxJobCount=20000
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
EnforcePartLimits=ALL
NodeName=n[1-$NODES] NodeHostname=localhost NodeAddr=127.0.0.1 Port=17001-$last CPUs=2 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=ALL MaxTime=1 State=UP
EOF
}

start_bg() { # name, command...: starts it under setsid, records its PID
  local name=$1
  shift
  setsid "$@" >"$DIR/log/$name.out" 2>&1 </dev/null &
  echo $! >"$DIR/run/$name.pidrec"
}

start() {
  install
  if [ -f "$DIR/run/slurmctld.pidrec" ] && kill -0 "$(cat "$DIR/run/slurmctld.pidrec")" 2>/dev/null; then
    log "already running"
  else
    write_conf
    mkdir -p /run/munge
    chown munge:munge /run/munge
    start_bg munged setpriv --reuid=munge --regid=munge --init-groups munged -F
    for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
    # Programs that ignore SLURM_CONF (srun inside Snakemake's jobs) read the default path.
    if [ ! -e /etc/slurm/slurm.conf ] && mkdir -p /etc/slurm 2>/dev/null; then
      ln -s "$CONF" /etc/slurm/slurm.conf && touch "$DIR/run/etc-link"
    fi
    start_bg slurmctld slurmctld -D -i -f "$CONF"
    for i in $(seq 1 "$NODES"); do
      start_bg "slurmd-n$i" slurmd -D -N "n$i" -f "$CONF"
    done
  fi
  for _ in $(seq 120); do
    if [ "$(sinfo -h -o '%t' 2>/dev/null | sort -u | tr -d '\n')" = idle ]; then
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 0.5
  done
  log "the nodes did not become idle:"
  sinfo >&2 || true
  tail -n 20 "$DIR/log/slurmctld.log" >&2 || true
  return 1
}

stop() {
  for rec in "$DIR"/run/*.pidrec; do
    [ -e "$rec" ] || continue
    kill "$(cat "$rec")" 2>/dev/null || true
  done
  sleep 1
  for rec in "$DIR"/run/*.pidrec; do
    [ -e "$rec" ] || continue
    kill -9 "$(cat "$rec")" 2>/dev/null || true
    rm -f "$rec"
  done
  if [ -e "$DIR/run/etc-link" ]; then
    rm -f /etc/slurm/slurm.conf "$DIR/run/etc-link"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
