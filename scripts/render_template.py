#!/usr/bin/env python3
"""Which resources template.yaml creates for a set of parameter values.

    scripts/render_template.py [--require-sam] [Key=Value ...]

Prints, on stdout and nothing else, a sorted JSON list of the logical ids of the CloudFormation
resources that exist for these parameter values (the template's defaults for the others):

1. the template is translated by the SAM translator (aws-sam-translator), as `sam deploy` has
   CloudFormation do: local CodeUris are replaced by an S3 URI, as `sam package` would, and no
   AWS call is made (no managed policy is looked up: the template names none);
2. every resource's Condition is evaluated with the parameter values (Fn::Equals, Fn::Not,
   Fn::And, Fn::Or, Condition, Ref to parameters and pseudo parameters).

It fails (a message on stderr, exit 1), as CloudFormation would refuse the stack, when a key is
not a parameter, a parameter without a default is not given, a value breaks the parameter's
AllowedValues, AllowedPattern, MinValue/MaxValue or MinLength/MaxLength, a Rules assertion
fails, or a resource or output that exists refers (Ref, Fn::GetAtt, Fn::Sub, DependsOn) to a
resource that does not (a reference in the branch of an Fn::If that is not taken is none).

The translator is this interpreter's, or else the one `scripts/package.sh` installs with the SAM
CLI into .venv/deploy (the script runs itself again with that interpreter). With neither (the
test command installs only .venv), step 1 is left out and the list holds the template's own
resources, which keep their logical ids through the translation (a note says so on stderr);
--require-sam makes that an error.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
DEPLOY_PYTHON = ROOT / ".venv" / "deploy" / "bin" / "python"
REEXEC_MARK = "CANOPY_RENDER_TEMPLATE_REEXEC"
REGION = "us-east-1"
PSEUDO = {
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "canopy-monitor",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:123456789012:stack/canopy-monitor/00000000-0000-0000-0000-000000000000",
    "AWS::NotificationARNs": [],
    "AWS::NoValue": None,
}


class RenderError(Exception):
    pass


# --- YAML with CloudFormation's short-form intrinsics ------------------------------------------

def load_template(path: Path) -> dict[str, Any]:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    def intrinsic(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
        name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if suffix == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", intrinsic)
    with path.open(encoding="utf-8") as f:
        template = yaml.load(f, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise RenderError(f"{path}: not a template with Resources")
    return template


# --- parameters ----------------------------------------------------------------------------------

def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parameter_values(template: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    declared = template.get("Parameters", {}) or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise RenderError(f"not parameters of the template: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        elif "Default" in spec:
            value = as_text(spec["Default"])
        else:
            raise RenderError(f"parameter {name} has no default: pass {name}=<value>")
        check_parameter(name, spec, value)
        if str(spec.get("Type", "String")).startswith(("CommaDelimitedList", "List<")):
            values[name] = [v.strip() for v in value.split(",")] if value else []
        else:
            values[name] = value
    return values


def check_parameter(name: str, spec: dict[str, Any], value: str) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [as_text(v) for v in allowed]:
        raise RenderError(f"{name}={value!r} is not one of {[as_text(v) for v in allowed]}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        raise RenderError(f"{name}={value!r} does not match AllowedPattern {pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise RenderError(f"{name}={value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise RenderError(f"{name}={value} is below MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise RenderError(f"{name}={value} is above MaxValue {spec['MaxValue']}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise RenderError(f"{name}={value!r} is shorter than MinLength {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise RenderError(f"{name}={value!r} is longer than MaxLength {spec['MaxLength']}")


# --- conditions and rules ------------------------------------------------------------------------

class Evaluator:
    def __init__(self, conditions: dict[str, Any], params: dict[str, Any]) -> None:
        self.conditions = conditions or {}
        self.params = params
        self.memo: dict[str, bool] = {}
        self.evaluating: set[str] = set()

    def condition(self, name: str) -> bool:
        if name not in self.memo:
            if name not in self.conditions:
                raise RenderError(f"no condition {name}")
            if name in self.evaluating:
                raise RenderError(f"condition {name} refers to itself")
            self.evaluating.add(name)
            self.memo[name] = self.boolean(self.conditions[name], f"condition {name}")
            self.evaluating.discard(name)
        return self.memo[name]

    def boolean(self, expr: Any, where: str) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            (fn, args), = expr.items()
            if fn == "Condition":
                return self.condition(args)
            if fn == "Fn::Equals":
                a, b = args
                return self.value(a, where) == self.value(b, where)
            if fn == "Fn::Not":
                return not self.boolean(args[0], where)
            if fn == "Fn::And":
                return all([self.boolean(a, where) for a in args])
            if fn == "Fn::Or":
                return any([self.boolean(a, where) for a in args])
            if fn == "Fn::Contains":
                haystack, needle = args
                return self.value(needle, where) in self.value(haystack, where)
        if isinstance(expr, bool):
            return expr
        raise RenderError(f"{where}: cannot evaluate {json.dumps(expr)}")

    def value(self, expr: Any, where: str) -> Any:
        if isinstance(expr, dict) and len(expr) == 1:
            (fn, arg), = expr.items()
            if fn == "Ref":
                if arg in self.params:
                    return self.params[arg]
                if arg in PSEUDO:
                    return PSEUDO[arg]
                raise RenderError(f"{where}: Ref {arg} is not a parameter")
            if fn in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Fn::Contains", "Condition"):
                return self.boolean(expr, where)
            raise RenderError(f"{where}: cannot evaluate {json.dumps(expr)}")
        if isinstance(expr, list):
            return [self.value(v, where) for v in expr]
        return as_text(expr)


def check_rules(rules: dict[str, Any], evaluator: Evaluator) -> None:
    for name, rule in (rules or {}).items():
        where = f"rule {name}"
        if "RuleCondition" in rule and not evaluator.boolean(rule["RuleCondition"], where):
            continue
        for assertion in rule.get("Assertions", []):
            if not evaluator.boolean(assertion["Assert"], where):
                raise RenderError(
                    f"{where}: {assertion.get('AssertDescription', 'assertion failed')}"
                )


# --- the SAM translation -------------------------------------------------------------------------

def sam_translator_available() -> bool:
    try:
        import samtranslator  # noqa: F401
    except ImportError:
        return False
    return True


def with_s3_code(template: dict[str, Any]) -> dict[str, Any]:
    """Local CodeUri/ContentUri/DefinitionUri as the S3 URIs `sam package` puts there."""
    uri_of = {
        "AWS::Serverless::Function": "CodeUri",
        "AWS::Serverless::LayerVersion": "ContentUri",
        "AWS::Serverless::Api": "DefinitionUri",
        "AWS::Serverless::HttpApi": "DefinitionUri",
        "AWS::Serverless::StateMachine": "DefinitionUri",
    }

    def s3(value: Any) -> Any:
        if isinstance(value, str) and not value.startswith("s3://"):
            return f"s3://render-template/{value.strip('./') or 'root'}"
        return value

    for resource in template["Resources"].values():
        key = uri_of.get(resource.get("Type", ""))
        props = resource.get("Properties") or {}
        if key and key in props:
            props[key] = s3(props[key])
    function_globals = (template.get("Globals") or {}).get("Function") or {}
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = s3(function_globals["CodeUri"])
    return template


class NoManagedPolicies:
    """The translator asks for this only to resolve a managed policy named without its ARN."""

    def load(self) -> dict[str, str]:
        raise RenderError(
            "the template names a managed policy the SAM translator cannot resolve without AWS: use its ARN"
        )


def translate(template: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    parameters = dict(given)
    parameters.update({k: PSEUDO[k] for k in ("AWS::Region", "AWS::Partition")})
    try:
        return transform(with_s3_code(template), parameters, NoManagedPolicies())
    except InvalidDocumentException as e:
        causes = "; ".join(str(getattr(c, "message", c)) for c in e.causes)
        raise RenderError(f"the SAM translator refuses the template: {causes}") from None


# --- references ----------------------------------------------------------------------------------

SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def references(node: Any, evaluator: Evaluator, where: str, out: set[str]) -> None:
    """Logical names `node` refers to, leaving out the branches of Fn::If that are not taken."""
    if isinstance(node, list):
        for item in node:
            references(item, evaluator, where, out)
        return
    if not isinstance(node, dict):
        return
    if len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Fn::If":
            condition, when_true, when_false = arg
            taken = when_true if evaluator.condition(condition) else when_false
            references(taken, evaluator, where, out)
            return
        if fn == "Ref" and isinstance(arg, str):
            out.add(arg)
            return
        if fn == "Fn::GetAtt":
            name = arg.split(".", 1)[0] if isinstance(arg, str) else arg[0]
            if isinstance(name, str):
                out.add(name)
            references(arg[1:] if isinstance(arg, list) else [], evaluator, where, out)
            return
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            for variable in SUB_VARIABLE.findall(text if isinstance(text, str) else ""):
                name = variable.split(".", 1)[0].strip()
                if name not in variables:
                    out.add(name)
            references(variables, evaluator, where, out)
            return
    for value in node.values():
        references(value, evaluator, where, out)


def check_references(
    template: dict[str, Any], existing: set[str], params: dict[str, Any], evaluator: Evaluator
) -> None:
    known = existing | set(params) | set(PSEUDO)
    dangling: list[str] = []
    for name in sorted(existing):
        resource = template["Resources"][name]
        found: set[str] = set()
        references(resource.get("Properties", {}), evaluator, name, found)
        depends = resource.get("DependsOn", [])
        found.update([depends] if isinstance(depends, str) else depends)
        dangling += [f"resource {name} -> {r}" for r in sorted(found - known)]
    for name, output in sorted((template.get("Outputs") or {}).items()):
        if "Condition" in output and not evaluator.condition(output["Condition"]):
            continue
        found = set()
        references(output, evaluator, f"output {name}", found)
        dangling += [f"output {name} -> {r}" for r in sorted(found - known)]
    if dangling:
        raise RenderError("references to resources that do not exist:\n  " + "\n  ".join(dangling))


# --- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> tuple[dict[str, str], bool]:
    given: dict[str, str] = {}
    require_sam = False
    for arg in argv:
        if arg == "--require-sam":
            require_sam = True
        elif arg in ("-h", "--help"):
            print(__doc__, file=sys.stderr)
            sys.exit(0)
        elif "=" in arg and not arg.startswith("-"):
            key, value = arg.split("=", 1)
            given[key] = value
        else:
            raise RenderError(f"not Key=Value: {arg!r} (usage: render_template.py [--require-sam] [Key=Value ...])")
    return given, require_sam


def main(argv: list[str]) -> int:
    try:
        given, require_sam = parse_args(argv)
        has_sam = sam_translator_available()
        if not has_sam and DEPLOY_PYTHON.exists() and not os.environ.get(REEXEC_MARK):
            os.environ[REEXEC_MARK] = "1"
            os.execv(str(DEPLOY_PYTHON), [str(DEPLOY_PYTHON), str(Path(__file__).resolve()), *argv])
        if not has_sam and require_sam:
            raise RenderError(
                "no SAM translator: scripts/package.sh installs it (with the SAM CLI) into .venv/deploy"
            )
        # The translator's boto3 session needs a region and no profile; nothing calls AWS.
        os.environ["AWS_DEFAULT_REGION"] = REGION
        for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            os.environ.pop(variable, None)

        source = load_template(TEMPLATE)
        params = parameter_values(source, given)
        check_rules(source.get("Rules", {}), Evaluator(source.get("Conditions", {}), params))
        if has_sam:
            template = translate(source, given)
        else:
            print(
                "render_template: no SAM translator (scripts/package.sh installs it into .venv/deploy): "
                "listing the template's own resources, which keep their logical ids through it",
                file=sys.stderr,
            )
            template = source
        evaluator = Evaluator(template.get("Conditions", {}), params)
        existing = {
            name
            for name, resource in template["Resources"].items()
            if "Condition" not in resource or evaluator.condition(resource["Condition"])
        }
        check_references(template, existing, params, evaluator)
    except RenderError as e:
        print(f"render_template: {e}", file=sys.stderr)
        return 1
    print(json.dumps(sorted(existing), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
