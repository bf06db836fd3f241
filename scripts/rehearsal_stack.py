#!/usr/bin/env python3
"""The rehearsal account's stack, made from template.yaml itself (scripts/rehearse.sh runs it).

    scripts/rehearsal_stack.py create --endpoint URL --stack NAME --out FILE
        [--gateway-port N] [--reconnect-port N] [Key=Value ...]

What CloudFormation does at `sam deploy`, played on moto:
1. template.yaml is translated by the SAM translator (scripts/render_template.py) and its
   Conditions are resolved for the parameter values given: every resource and output whose
   Condition is false is dropped, and every Fn::If is replaced by the branch taken (moto
   mishandles Fn::If and AWS::NoValue inside IAM policies).
2. What moto 5.2.5 does not create is filled from the same translated template, never from a
   second list:
   - AWS::SecretsManager::Secret: created here first, as CloudFormation would (its name, its
     description, its SecretString or a generated one), and every Ref to it is its ARN;
   - AWS::ApiGatewayV2::* (the HTTP APIs, stages, authorizers): played by lambda-host, whose
     ports the APIs' URLs name (`https://${Api}.execute-api...` becomes `http://127.0.0.1:PORT`);
   - AWS::Lambda::EventSourceMapping: played by lambda-host (moto's Lambda would invoke the
     function in Docker on every message or stream record);
   - Ref of an AWS::Events::EventBus is its Name (moto answers with a Python object's text);
   - after creation, AWS::CloudWatch::Alarm (PutMetricAlarm), AWS::SNS::TopicPolicy
     (SetTopicAttributes Policy) and AWS::SNS::Subscription (Subscribe), resolved against the
     stack's physical resources; AWS::Scheduler::Schedule is not played (each scheduled
     function answers its sample event instead).
   Any other resource moto did not create fails the rehearsal, by name.
3. The stack is created on moto with CreateStack, with every parameter's value (the defaults
   too, as CloudFormation reports them), so DescribeStacks, its Parameters and Outputs are what
   canopy-ops reads in AWS.
4. FILE gets what lambda-host needs: each function's binary (its BuildProperties) and the
   Environment moto's Lambda holds for it (the template's, resolved by CloudFormation against
   the stack's physical resources) with what Lambda itself sets, its timeout and its sample
   events; the HTTP API routes (the functions' HttpApi events); the SQS event source mappings.

Prints, one a line, what it created and filled; exits 1 with a message on any failure.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import string
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render_template as rt  # noqa: E402

ACCOUNT = "123456789012"

# The sample events each function handles in the rehearsal (events/).
SAMPLE_EVENTS = {
    "webhook-intake": ["webhook-complete.json"],
    "pull-fetcher": ["sqs-fetch-pull.json"],
    "reconnect-notifier": ["sqs-notify-reconnect.json"],
    "reconnect-reminder": ["schedule-reminders.json"],
    "monitoring-api": ["api-list-monitorings.json"],
    "monitoring-sync": ["schedule-monitoring-sync.json"],
    "reconnect-api": ["api-reconnect-poll.json"],
    "event-publisher": ["stream-outbox.json", "schedule-outbox-sweep.json"],
}


class RehearsalError(Exception):
    pass


# --- 1. translate and resolve --------------------------------------------------------------------

NO_VALUE = object()


def resolve_ifs(node: Any, ev: rt.Evaluator) -> Any:
    """Every Fn::If replaced by the branch taken; AWS::NoValue removed."""
    if isinstance(node, list):
        items = [resolve_ifs(v, ev) for v in node]
        return [v for v in items if v is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Fn::If":
            condition, when_true, when_false = arg
            return resolve_ifs(when_true if ev.condition(condition) else when_false, ev)
        if fn == "Ref" and arg == "AWS::NoValue":
            return NO_VALUE
    out = {}
    for k, v in node.items():
        v = resolve_ifs(v, ev)
        if v is not NO_VALUE:
            out[k] = v
    return out


def resolved_template(given: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(the source template, the translated one with Conditions resolved, parameter values)."""
    source = rt.load_template(rt.TEMPLATE)
    params = rt.parameter_values(source, given)
    rt.check_rules(source.get("Rules", {}), rt.Evaluator(source.get("Conditions", {}), params))
    translated = rt.translate(copy.deepcopy(source), given)
    ev = rt.Evaluator(translated.get("Conditions", {}), params)
    resources = {}
    for name, resource in translated["Resources"].items():
        if "Condition" in resource and not ev.condition(resource.pop("Condition")):
            continue
        resource.pop("Condition", None)
        resources[name] = resolve_ifs(resource, ev)
    outputs = {}
    for name, output in (translated.get("Outputs") or {}).items():
        if "Condition" in output and not ev.condition(output.pop("Condition")):
            continue
        outputs[name] = resolve_ifs(output, ev)
    translated["Resources"] = resources
    translated["Outputs"] = outputs
    translated.pop("Conditions", None)
    translated.pop("Rules", None)
    return source, translated, params


# --- intrinsics, for what is filled here ---------------------------------------------------------

def substitute(node: Any, replace: Any) -> Any:
    """`replace(node)` returns a replacement or None; applied top-down everywhere."""
    new = replace(node)
    if new is not None:
        return new
    if isinstance(node, list):
        return [substitute(v, replace) for v in node]
    if isinstance(node, dict):
        return {k: substitute(v, replace) for k, v in node.items()}
    return node


class Resolver:
    """Intrinsics against known values: parameters, pseudo parameters, physical resources."""

    def __init__(self, params: dict[str, Any], stack: str, region: str, refs: dict[str, str],
                 attrs: dict[str, str]) -> None:
        self.params = params
        self.pseudo = dict(rt.PSEUDO)
        self.pseudo.update({"AWS::StackName": stack, "AWS::Region": region, "AWS::AccountId": ACCOUNT})
        self.refs = refs
        self.attrs = attrs

    def ref(self, name: str) -> Any:
        for table in (self.params, self.pseudo, self.refs):
            if name in table:
                return table[name]
        raise RehearsalError(f"cannot resolve Ref {name}")

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.value(v) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                key = arg if isinstance(arg, str) else ".".join(arg)
                if key not in self.attrs:
                    raise RehearsalError(f"cannot resolve Fn::GetAtt {key}")
                return self.attrs[key]
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                values = {k: self.value(v) for k, v in variables.items()}

                def one(match: Any) -> str:
                    name = match.group(1).strip()
                    if name in values:
                        return str(values[name])
                    if "." in name and name in self.attrs:
                        return self.attrs[name]
                    return str(self.ref(name))

                return rt.SUB_VARIABLE.sub(one, text)
            if fn == "Fn::Join":
                sep, items = arg
                return sep.join(str(v) for v in self.value(items))
            if fn == "Fn::Select":
                index, items = arg
                return self.value(items)[int(self.value(index))]
            if fn == "Fn::Split":
                sep, text = arg
                return str(self.value(text)).split(sep)
            if fn == "Fn::GetAZs":
                return [f"{self.pseudo['AWS::Region']}a"]
            if fn == "Fn::ToJsonString":
                return json.dumps(self.value(arg), separators=(",", ":"))
        return {k: self.value(v) for k, v in node.items()}


# --- 2. and 3. the stack on moto -----------------------------------------------------------------

def clients(endpoint: str, region: str) -> Any:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )
    return lambda service: session.client(service, endpoint_url=endpoint)


def is_api(resource: dict[str, Any]) -> bool:
    return resource.get("Type", "").startswith("AWS::ApiGatewayV2::")


def create(args: argparse.Namespace, given: dict[str, str]) -> dict[str, Any]:
    client = clients(args.endpoint, args.region)
    source, template, params = resolved_template(given)
    resources = template["Resources"]
    said: list[str] = []
    pre = Resolver(params, args.stack, args.region, {}, {})

    # Secrets: CloudFormation names a secret without Name <LogicalId>-<random>.
    secret_arns: dict[str, str] = {}
    sm = client("secretsmanager")
    for name, r in sorted(resources.items()):
        if r["Type"] != "AWS::SecretsManager::Secret":
            continue
        props = r.get("Properties", {})
        secret_name = pre.value(props.get("Name")) if "Name" in props else (
            f"{args.stack}-{name}-" + "".join(secrets.choice(string.ascii_letters) for _ in range(12))
        )
        if "SecretString" in props:
            value = pre.value(props["SecretString"])
        else:
            generate = props.get("GenerateSecretString", {})
            alphabet = string.ascii_letters + string.digits
            if not generate.get("ExcludePunctuation"):
                alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
            value = "".join(secrets.choice(alphabet) for _ in range(int(generate.get("PasswordLength", 32))))
        answer = sm.create_secret(
            Name=secret_name, Description=str(pre.value(props.get("Description", ""))), SecretString=value
        )
        secret_arns[name] = answer["ARN"]
        said.append(f"filled {name} (AWS::SecretsManager::Secret; moto's CloudFormation does not create it): {secret_name}")

    # The HTTP APIs: lambda-host serves them.
    api_ports: dict[str, int] = {}
    for name, r in sorted(resources.items()):
        if r["Type"] == "AWS::ApiGatewayV2::Api":
            api_ports[name] = args.reconnect_port if "Reconnect" in name else args.gateway_port
            said.append(f"filled {name} (AWS::ApiGatewayV2::Api; moto does not create it): lambda-host on http://127.0.0.1:{api_ports[name]}")
    bus_names = {
        name: pre.value(r["Properties"]["Name"])
        for name, r in resources.items()
        if r["Type"] == "AWS::Events::EventBus" and "Name" in r.get("Properties", {})
    }

    def replace(node: Any) -> Any:
        if not isinstance(node, dict) or len(node) != 1:
            return None
        (fn, arg), = node.items()
        if fn == "Ref" and arg in secret_arns:
            return secret_arns[arg]
        if fn == "Ref" and arg in bus_names:
            return bus_names[arg]
        if fn == "Ref" and arg in api_ports:
            return f"rehearsal{arg.lower()}"
        if fn == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            for api, port in api_ports.items():
                text = text.replace(
                    "https://${%s}.execute-api.${AWS::Region}.${AWS::URLSuffix}" % api,
                    f"http://127.0.0.1:{port}",
                ).replace("${%s}" % api, f"rehearsal{api.lower()}")
            for secret, arn in secret_arns.items():
                text = text.replace("${%s}" % secret, arn)
            return {"Fn::Sub": text if isinstance(arg, str) else [text, substitute(arg[1], replace)]}
        return None

    # moto's Lambda would run the event source mappings itself (invoking the function in
    # Docker on every stream record or message, and keeping a deleted mapping attached to the
    # table): lambda-host plays them instead, so they are not uploaded.
    for name, r in sorted(resources.items()):
        if r["Type"] == "AWS::Lambda::EventSourceMapping":
            said.append(f"filled {name} (AWS::Lambda::EventSourceMapping): played by lambda-host, not moto's Lambda")
    uploaded = {
        name: substitute(r, replace)
        for name, r in resources.items()
        if r["Type"] not in ("AWS::SecretsManager::Secret", "AWS::Lambda::EventSourceMapping") and not is_api(r)
    }
    # The code `sam package` uploads: moto's Lambda reads the object, lambda-host runs the
    # binaries built for this machine instead.
    s3 = client("s3")
    for r in uploaded.values():
        code = (r.get("Properties") or {}).get("Code") or {}
        if r["Type"] == "AWS::Lambda::Function" and "S3Bucket" in code:
            try:
                s3.create_bucket(Bucket=code["S3Bucket"])
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
            s3.put_object(Bucket=code["S3Bucket"], Key=code["S3Key"], Body=placeholder_zip())
    body = dict(template)
    body["Resources"] = uploaded
    body["Outputs"] = substitute(template["Outputs"], replace)
    cfn = client("cloudformation")
    all_params = [{"ParameterKey": k, "ParameterValue": ",".join(v) if isinstance(v, list) else str(v)}
                  for k, v in params.items()]
    cfn.create_stack(
        StackName=args.stack,
        TemplateBody=json.dumps(body),
        Parameters=all_params,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RehearsalError(f"stack {args.stack}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
    said.append(f"created stack {args.stack} from template.yaml (translated, Conditions resolved): {len(uploaded)} resources uploaded")

    # moto lists what it did not create with no logical id.
    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in cfn.list_stack_resources(StackName=args.stack)["StackResourceSummaries"]
        if r.get("LogicalResourceId")
    }
    for name in bus_names:
        physical[name] = physical.get(name) or bus_names[name]
    refs, attrs = physical_values(client, uploaded, physical, args)
    refs.update(secret_arns)
    refs.update({k: f"rehearsal{k.lower()}" for k in api_ports})
    refs.update(bus_names)
    post = Resolver(params, args.stack, args.region, refs, attrs)

    missing = sorted(set(uploaded) - set(physical))
    for name in missing:
        r = uploaded[name]
        kind = r["Type"]
        props = post.value(r.get("Properties", {}))
        if kind == "AWS::CloudWatch::Alarm":
            props.setdefault("AlarmName", f"{args.stack}-{name}")
            client("cloudwatch").put_metric_alarm(**alarm_arguments(props))
        elif kind == "AWS::SNS::TopicPolicy":
            for topic in props.get("Topics", []):
                client("sns").set_topic_attributes(
                    TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"])
                )
        elif kind == "AWS::SNS::Subscription":
            client("sns").subscribe(
                TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
            )
        elif kind == "AWS::Scheduler::Schedule":
            # Schedules are not played: their functions answer their sample events instead.
            said.append(f"not filled {name} ({kind}): schedules are not played; the function answers its sample event")
            continue
        else:
            raise RehearsalError(f"moto did not create {name} ({kind}) and the rehearsal does not fill that type")
        said.append(f"filled {name} ({kind}; moto's CloudFormation does not create it)")

    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    for key, value in outputs.items():
        if "object at 0x" in value or "${" in value:
            raise RehearsalError(f"output {key} is not resolved: {value}")
    return host_config(client, source, uploaded, physical, refs, post, args, said, outputs)


def placeholder_zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n# lambda-host runs the function's own binary\n")
    return buffer.getvalue()


def physical_values(client: Any, resources: dict[str, Any], physical: dict[str, str],
                    args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """What Ref and Fn::GetAtt give for the resources moto created (the attributes used)."""
    refs: dict[str, str] = {}
    attrs: dict[str, str] = {}
    region = args.region
    for name, pid in physical.items():
        kind = resources.get(name, {}).get("Type", "")
        refs[name] = pid
        if kind == "AWS::SQS::Queue":
            url = pid if pid.startswith("http") else client("sqs").get_queue_url(QueueName=pid)["QueueUrl"]
            refs[name] = url
            arn = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            attrs[f"{name}.Arn"] = arn
            attrs[f"{name}.QueueName"] = url.rsplit("/", 1)[-1]
        elif kind == "AWS::DynamoDB::Table":
            table = client("dynamodb").describe_table(TableName=pid)["Table"]
            attrs[f"{name}.Arn"] = table["TableArn"]
            if "LatestStreamArn" in table:
                attrs[f"{name}.StreamArn"] = table["LatestStreamArn"]
        elif kind == "AWS::SNS::Topic":
            attrs[f"{name}.TopicArn"] = pid
            attrs[f"{name}.TopicName"] = pid.rsplit(":", 1)[-1]
        elif kind == "AWS::KMS::Key":
            # (moto's DescribeKey fails on a key CloudFormation made with a policy document)
            attrs[f"{name}.Arn"] = f"arn:aws:kms:{region}:{ACCOUNT}:key/{pid}"
            attrs[f"{name}.KeyId"] = pid
        elif kind == "AWS::Lambda::Function":
            attrs[f"{name}.Arn"] = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{pid}"
        elif kind == "AWS::IAM::Role":
            attrs[f"{name}.Arn"] = f"arn:aws:iam::{ACCOUNT}:role/{pid}"
        elif kind == "AWS::Logs::LogGroup":
            attrs[f"{name}.Arn"] = f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{pid}:*"
        elif kind == "AWS::Events::EventBus":
            attrs[f"{name}.Arn"] = f"arn:aws:events:{region}:{ACCOUNT}:event-bus/{pid}"
            attrs[f"{name}.Name"] = pid
    return refs, attrs


ALARM_KEYS = {
    "AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
    "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic",
    "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
    "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics",
    "ThresholdMetricId",
}


def alarm_arguments(props: dict[str, Any]) -> dict[str, Any]:
    """AWS::CloudWatch::Alarm's properties as PutMetricAlarm's arguments."""
    out = {k: v for k, v in props.items() if k in ALARM_KEYS}
    for k in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if k in out:
            out[k] = int(out[k])
    if "Threshold" in out:
        out["Threshold"] = float(out["Threshold"])
    if "ActionsEnabled" in out:
        out["ActionsEnabled"] = str(out["ActionsEnabled"]).lower() == "true"
    for metric in out.get("Metrics", []):
        stat = metric.get("MetricStat")
        if stat and "Period" in stat:
            stat["Period"] = int(stat["Period"])
        if "ReturnData" in metric:
            metric["ReturnData"] = str(metric["ReturnData"]).lower() == "true"
    return out


# --- 4. what lambda-host needs -------------------------------------------------------------------

def host_config(client: Any, source: dict[str, Any], uploaded: dict[str, Any], physical: dict[str, str],
                refs: dict[str, str], post: Resolver, args: argparse.Namespace, said: list[str],
                outputs: dict[str, str]) -> dict[str, Any]:
    lam = client("lambda")
    functions: dict[str, Any] = {}
    apis: dict[str, dict[str, Any]] = {}
    queues: list[dict[str, Any]] = []
    globals_fn = (source.get("Globals") or {}).get("Function") or {}
    for name, r in sorted(source["Resources"].items()):
        if r.get("Type") != "AWS::Serverless::Function" or name not in uploaded:
            continue
        binary = (r.get("Metadata") or {}).get("BuildProperties", {}).get("Binary")
        if not binary:
            raise RehearsalError(f"{name}: no Metadata.BuildProperties.Binary")
        function_name = physical[name]
        config = lam.get_function_configuration(FunctionName=function_name)
        # Lambda holds text; moto keeps a Number parameter's value as a number.
        variables = {
            k: (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in ((config.get("Environment") or {}).get("Variables") or {}).items()
        }
        for key, value in variables.items():
            if "object at 0x" in value or "${" in value:
                raise RehearsalError(f"{name}: {key} is not resolved: {value}")
        props = uploaded[name]["Properties"]
        timeout = int(props.get("Timeout", globals_fn.get("Timeout", 3)))
        memory = int(props.get("MemorySize", globals_fn.get("MemorySize", 128)))
        log_group = (props.get("LoggingConfig") or {}).get("LogGroup")
        log_format = (props.get("LoggingConfig") or {}).get("LogFormat", "Text")
        environment = dict(variables)
        # What Lambda sets in every sandbox (the execution role's credentials are the emulator's).
        environment.update({
            "AWS_REGION": args.region,
            "AWS_DEFAULT_REGION": args.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": str(post.value(log_group)) if log_group else f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "rehearsal",
            "AWS_LAMBDA_LOG_FORMAT": str(log_format).upper(),
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "_HANDLER": "bootstrap",
            "LAMBDA_TASK_ROOT": "/var/task",
            # Not Lambda's: the one difference from a real account.
            "AWS_ENDPOINT_URL": args.endpoint,
        })
        functions[name] = {
            "binary": binary,
            "environment": environment,
            "timeout_seconds": timeout,
            "sample_events": SAMPLE_EVENTS.get(binary, []),
        }
        for event in (r.get("Properties", {}).get("Events") or {}).values():
            eprops = event.get("Properties", {})
            if event.get("Type") == "HttpApi":
                api = eprops.get("ApiId", {}).get("Ref", "ServerlessHttpApi")
                port = args.reconnect_port if "Reconnect" in api else args.gateway_port
                apis.setdefault(api, {"name": api, "port": port, "routes": []})["routes"].append(
                    {"method": eprops.get("Method", "ANY"), "path": eprops.get("Path", "/{proxy+}"), "function": name}
                )
            elif event.get("Type") == "SQS":
                queue = eprops["Queue"]["Fn::GetAtt"]
                queue = queue.split(".")[0] if isinstance(queue, str) else queue[0]
                queues.append({
                    "queue_url": refs[queue],
                    "queue_arn": post.attrs[f"{queue}.Arn"],
                    "function": name,
                    "batch_size": int(eprops.get("BatchSize", 10)),
                    "report_batch_item_failures": "ReportBatchItemFailures" in eprops.get("FunctionResponseTypes", []),
                })
            else:
                said.append(f"not played: {name}'s {event.get('Type')} event (the function answers its sample event)")
    missing = sorted(set(SAMPLE_EVENTS) - {f["binary"] for f in functions.values()})
    if missing:
        raise RehearsalError(f"the stack has no function for {', '.join(missing)} with these parameters")
    for f in functions.values():
        said.append(f"function {f['binary']}: {len(f['environment'])} variables")
    return {
        "endpoint": args.endpoint,
        "region": args.region,
        "stack": args.stack,
        "outputs": outputs,
        "functions": functions,
        "apis": list(apis.values()),
        "queues": queues,
        "said": said,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create")
    c.add_argument("--endpoint", required=True)
    c.add_argument("--stack", required=True)
    c.add_argument("--region", default="us-east-1")
    c.add_argument("--out", required=True)
    c.add_argument("--gateway-port", type=int, required=True)
    c.add_argument("--reconnect-port", type=int, required=True)
    c.add_argument("parameters", nargs="*", metavar="Key=Value")
    args = parser.parse_args(argv)
    given = {}
    for p in args.parameters:
        if "=" not in p:
            print(f"rehearsal_stack: not Key=Value: {p}", file=sys.stderr)
            return 2
        k, v = p.split("=", 1)
        given[k] = v
    # The translator's boto3 session needs a region and no profile.
    os.environ["AWS_DEFAULT_REGION"] = args.region
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(variable, None)
    try:
        config = create(args, given)
    except (RehearsalError, rt.RenderError) as e:
        print(f"rehearsal_stack: {e}", file=sys.stderr)
        return 1
    Path(args.out).write_text(json.dumps(config, indent=2))
    for line in config["said"]:
        print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
