#!/usr/bin/env bash
# Mutation testing of the decision, claim and fencing code (`make mutation`; see
# CONTRIBUTING.md). Arguments go to `mutmut run` (e.g. mutant name globs); without any, the
# decision code, the episode lookup of the intake, the queue, the lease and the claim and
# fence steps of the delivery worker (pyproject.toml's [tool.mutmut] names their files).
#
# mutmut copies the code it mutates into mutants/ and puts that folder first on the import
# path. Ours is imported as `sysnotify.mailer` from mailer/ through the editable install's
# mapping, which a copy of mailer/ would not shadow; so the run happens in a staged tree with
# the plain package layout (build/mutation/sysnotify/mailer/...), whose mutants/sysnotify is
# then found before the editable install. Its mutants/ folder keeps mutmut's results between
# runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
stage="$root/build/mutation"
mutmut="${MUTMUT:-$root/.venv/bin/mutmut}"

mkdir -p "$stage"
rm -rf "$stage/sysnotify" "$stage/tests" "$stage/stack"
cp -r "$root/sysnotify" "$stage/sysnotify"
for service in mailer exporter templates; do
    cp -r "$root/$service" "$stage/sysnotify/$service"
done
cp -r "$root/tests" "$root/stack" "$stage/"
cp "$root/pyproject.toml" "$stage/pyproject.toml"
find "$stage" -name __pycache__ -prune -exec rm -rf {} +

if [ $# -eq 0 ]; then
    worker="sysnotify.mailer.delivery.worker.xǁDeliveryWorkerǁ"
    set -- "sysnotify.mailer.intake.decide.*" \
        "sysnotify.mailer.intake.transaction.x__load_states*" \
        "sysnotify.mailer.delivery.queue.*" "sysnotify.mailer.delivery.lease.*" \
        "${worker}_next_row*" "${worker}release_claimed*" "${worker}_finished*" \
        "${worker}_record_sent*"
fi
cd "$stage"
nice -n 10 "$mutmut" run "$@"
# The survivors (and timeouts); mutants outside the run's scope are listed as "not checked".
nice -n 10 "$mutmut" results | grep -v ': not checked$' || true
