#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests/test_units.py: controller + node daemon + munge, as root,
# without systemd. Debian packages: slurmctld slurmd slurm-client munge (installed if missing).
#
#   start-local-slurm.sh          # install if needed, start, wait until the node is idle, print sinfo
#   start-local-slurm.sh stop     # stop the daemons this script started (by their pid files)
#
# Then: sbatch --array=0-3 job.sh; sbatch --dependency=afterok:<id> merge.sh; squeue; sacct is off.
set -euo pipefail
PIDS=/run/local-slurm
if [ "${1:-}" = stop ]; then
  for p in slurmd slurmctld munged; do
    if [ -s "$PIDS/$p.pid" ]; then
      pid=$(cat "$PIDS/$p.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done  # gone before a restart
      rm -f "$PIDS/$p.pid"
    fi
  done
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "start-local-slurm: needs root" >&2; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$PIDS" \
         /run/munge /etc/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$PIDS/munged.pid" 2>/dev/null || true
fi
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MpiDefault=none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 60); do
  timeout 5 sinfo -h -o %t 2>/dev/null | grep -qE "idle|mix|alloc" && break
  sleep 1
done
timeout 10 sinfo
