"""State machines created through CloudFormation must be the ones that execute.

moto 5.2.5 has two Step Functions backends: ``stepfunctions_backends`` (records
executions, runs nothing) and ``stepfunctions_parser_backends`` (really interprets
ASL). The HTTP API switches to the parser backend once
``{"stepfunctions": {"execute_state_machine": true}}`` is set, but
``StateMachine.create_from_cloudformation_json`` and friends always use the
first one, so a stack-created state machine is invisible to DescribeStateMachine
and StartExecution. In the server process execution is always on, so we point
the CloudFormation code path at the parser backend.
"""
from __future__ import annotations


def apply() -> None:
    from moto.stepfunctions import models as sfn_models
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    # The CloudFormation classmethods look the name up in the module globals at
    # call time, so rebinding the module attribute is enough and leaves the
    # non-executing backend untouched for everything else.
    sfn_models.stepfunctions_backends = stepfunctions_parser_backends
