"""AWS::Events::Rule accepts its EventPattern as a JSON string, as CloudFormation does.

EventPattern is Json-typed (the resource schema allows a string or an object), and
core.yaml writes the demand-partner-degradation pattern with !Sub so that a Number
parameter lands in it as a JSON number. moto 5.2.5 json.dumps()es whatever it gets,
so a string becomes a quoted JSON string and the stack fails (HTTP 500). We parse a
string pattern into the object moto expects; an object pattern is left as it is.
"""
from __future__ import annotations

import json


def apply() -> None:
    from moto.events.models import Rule

    original = Rule.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json.get("Properties", {})
        if isinstance(properties.get("EventPattern"), str):
            properties["EventPattern"] = json.loads(properties["EventPattern"])
        return original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    # update_from_cloudformation_json deletes and calls this one through cls, so it is covered too.
    Rule.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)
