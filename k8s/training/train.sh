#!/bin/sh
# Entry point of each training pod of the Indexed Job: builds this worker's TF_CONFIG from its completion index,
# then runs the command given as arguments (the export). Every pod of the Job gets the same cluster list:
# <job>-<i>.<service>:<port> for i in 0..WORKERS-1, the stable DNS names of an Indexed Job's pods behind a
# headless Service. Worker 0 is the chief: it alone gates and publishes the version.
set -eu
: "${JOB_COMPLETION_INDEX:?set by Kubernetes for Indexed Jobs}"
: "${WORKERS:?number of workers (the Job's completions)}"
: "${JOB_NAME:?the Job's name (its pods' hostnames are JOB_NAME-INDEX)}"
: "${SERVICE:?the headless Service's name (the pods' subdomain)}"
PORT="${PORT:-2222}"
hosts=""
i=0
while [ "$i" -lt "$WORKERS" ]; do
  hosts="${hosts:+$hosts,}\"$JOB_NAME-$i.$SERVICE:$PORT\""
  i=$((i + 1))
done
TF_CONFIG="{\"cluster\":{\"worker\":[$hosts]},\"task\":{\"type\":\"worker\",\"index\":$JOB_COMPLETION_INDEX}}"
export TF_CONFIG
echo "TF_CONFIG=$TF_CONFIG" >&2
exec "$@"
