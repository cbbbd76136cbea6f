"""The stack's template, as the CloudFormation tests read it: parsed (intrinsic functions kept),
or as JSON moto's CloudFormation can create."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "cloudformation" / "multinode.yaml"


def load_template() -> Any:
    return cfn_yaml.load(str(TEMPLATE))


def template_for_moto() -> str:
    """moto's CloudFormation cannot create a Cloud Map namespace: its id stands in for it."""
    parsed = load_template()
    del parsed["Resources"]["ServiceNamespace"]
    text = json.dumps(parsed)
    reference = json.dumps({"Fn::GetAtt": ["ServiceNamespace", "Id"]})
    assert reference in text
    return text.replace(reference, '"ns-moto"')
