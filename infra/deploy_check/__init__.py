"""`make deploy-check`: offline checks over what `sam deploy` would really create.

SAM's translator turns template.yaml into the CloudFormation that is deployed (the roles SAM
generates, their policies as they end up); each check in the registry (checks.py) looks at that
output, at template.yaml as written and at the nested stacks (infra/*.yaml), and reports what
AWS would refuse or what would not work once deployed. ``python -m infra.deploy_check`` runs
them all and ends with ``deploy-check: <N> checks, <F> failures``.
"""
