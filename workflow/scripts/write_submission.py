import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

from moelab.placement import submission
from moelab.placement.policy_specs import SubmissionSpec

policy = SubmissionSpec.from_config(snakemake.params.submission)
path = snakemake.output.submission
submission.write(path, policy)
written = submission.load(path)  # read back: it imports and is configured, as the evaluator will find it
log.info("%s: moelab's policy as a competition submission, settings %s", path, policy.settings())
