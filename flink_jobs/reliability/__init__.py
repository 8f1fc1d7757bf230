"""Reliability of the streaming path (issue 6): fault proxy, fuzz generator, harness.

- ``fault_proxy.FaultProxy``: loopback HTTP proxy in front of the local endpoint with
  AWS-shaped faults (throttling, partial failures, outages, Kinesis iterator/throughput).
- ``fuzz``: seeded malformed / duplicate / late / edge-case records with expected reason codes.
- ``python -m flink_jobs.reliability --out FILE.json``: the job on the mini-cluster under each
  fault (``scenarios.Harness``), figures measured from its real outputs.
"""
