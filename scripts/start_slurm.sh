#!/usr/bin/env bash
# Starts a single-node Slurm (slurmctld + slurmd on localhost, munge for auth) for the tests.
#
#   bash scripts/start_slurm.sh          install (apt, if missing), configure, start; idempotent
#   bash scripts/start_slurm.sh stop     stop the daemons this script started
#
# Needs root (apt-get, /etc/slurm, daemons). Writes /etc/slurm/slurm.conf only when it is absent
# or was written by this script. No slurmdbd: `sacct` answers "accounting storage is disabled",
# and labelling.submit.SlurmLauncher falls back to `scontrol show job` for finished jobs.
# Prints "slurm: up" and exits 0 when a job can be scheduled; exits non-zero otherwise.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by defect-genome scripts/start_slurm.sh"
RUN=/run/defect-genome-slurm
node="$(hostname -s)"

stop() {
  for name in slurmd slurmctld; do
    if [ -f "$RUN/$name.pid" ]; then
      kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
      rm -f "$RUN/$name.pid"
    fi
  done
}

if [ "${1:-}" = "stop" ]; then
  stop
  echo "slurm: stopped"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "slurm: start_slurm.sh needs root" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null; }
fi

mkdir -p "$RUN" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm

if [ ! -f "$CONF" ] || grep -q "^$MARK" "$CONF"; then
  cpus="$(nproc)"
  mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)"
  cat > "$CONF.new" <<EOF
$MARK
ClusterName=dg-local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then rm -f "$CONF.new"; else mv "$CONF.new" "$CONF"; fi
fi

# munge
if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
  [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  su -s /bin/sh munge -c "/usr/sbin/munged" 2>/dev/null || /usr/sbin/munged --force
fi

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
alive slurmctld || /usr/sbin/slurmctld
alive slurmd || /usr/sbin/slurmd

# Wait until the node accepts jobs.
for _ in $(seq 1 60); do
  state="$(sinfo -h -n "$node" -o %t 2>/dev/null | head -1 || true)"
  case "$state" in
    idle|mix|alloc) echo "slurm: up ($node, $state)"; exit 0 ;;
    down*|drain*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
echo "slurm: node $node did not become idle (state '${state:-none}'); see /var/log/slurm/" >&2
exit 1
