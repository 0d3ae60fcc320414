"""The component tests deploy through the github-actions driver against the fake GitHub."""

from __future__ import annotations

CLUSTER = """\
apiVersion: gitopsd.io/v1
kind: Component
metadata: {{name: cluster, layer: clusters}}
spec:
{inputs}  driver:
    type: github-actions
    repository: octo-org/infra
    workflow: gitopsd-component.yml
    api_url: {api_url}
  timeout: 2m
"""
# inputs rendered from the environment's variables, as a real component has them
REGION_INPUTS = '  inputs:\n    region: "${{ vars.region }}"\n    node_count: 3\n'


def cluster(api_url: str, *, inputs: str = "") -> str:
    """`components/cluster/component.yaml`, its workflow on the fake GitHub at `api_url`."""
    return CLUSTER.format(api_url=api_url, inputs=inputs)
