//! template.yaml and the code must agree on names: cfn-lint cannot see that.

use devkit::resources::MAX_RECEIVE_COUNT;

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml")
}

/// The text of resource `name`: its line and the more deeply indented lines after it.
fn resource(t: &str, name: &str) -> String {
    let header = format!("  {name}:");
    let mut lines = t.lines().skip_while(|l| *l != header);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("{name} not in template.yaml"));
    let body = lines.take_while(|l| l.is_empty() || l.starts_with("   "));
    std::iter::once(first)
        .chain(body)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn the_table_and_queues_match_what_the_code_expects() {
    let t = template();
    for needle in [
        "AttributeName: pk",
        "AttributeName: sk",
        "AttributeName: expires_at",
        "Path: /webhooks/canopy",
        "BuildMethod: rust-cargolambda",
        "Binary: webhook-intake",
        "Binary: reconnect-notifier",
        "Binary: reconnect-reminder",
        "IndexName: gsi1",
        "AttributeName: gsi1pk",
        "AttributeName: gsi1sk",
        "Binary: monitoring-api",
        "Binary: monitoring-sync",
        "ScheduleExpression: rate(1 day)",
    ] {
        assert!(t.contains(needle), "template.yaml lacks {needle:?}");
    }
    assert_eq!(webhook_intake::WEBHOOK_PATH, "/webhooks/canopy");
    let receive_counts: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("maxReceiveCount:"))
        .collect();
    assert_eq!(receive_counts.len(), 2);
    for line in receive_counts {
        assert!(
            line.trim().ends_with(&format!(": {MAX_RECEIVE_COUNT}")),
            "{line}"
        );
    }
}

/// The number after `key:` in a resource's text (the first such line).
fn number(block: &str, key: &str) -> u64 {
    let prefix = format!("{key}: ");
    block
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no numeric {key} in:\n{block}"))
}

#[test]
fn the_time_budgets_in_the_template_are_the_codes() {
    use canopy_monitor::app::budget::{self, ConsumerBudget};
    let t = template();
    let consumers: [(&str, &str, &str, ConsumerBudget); 2] = [
        (
            "PullFetcherFunction",
            "FetchQueue",
            "pull-fetcher",
            budget::FETCHER,
        ),
        (
            "ReconnectNotifierFunction",
            "NotifyQueue",
            "reconnect-notifier",
            budget::NOTIFIER,
        ),
    ];
    for (function, queue, binary, b) in consumers {
        b.check().unwrap_or_else(|e| panic!("{function}: {e}"));
        let f = resource(&t, function);
        assert!(f.contains(&format!("Binary: {binary}")));
        assert!(f.contains("- ReportBatchItemFailures"), "{function}");
        assert_eq!(
            number(&f, "Timeout"),
            b.function_timeout.as_secs(),
            "{function} Timeout"
        );
        assert_eq!(
            number(&f, "BatchSize"),
            u64::from(b.batch_size),
            "{function} BatchSize"
        );
        assert!(
            number(&f, "CANOPY_TIMEOUT_SECONDS") <= budget::CANOPY_TIMEOUT.as_secs(),
            "{function}: a Canopy call must fit the record budget"
        );
        let q = resource(&t, queue);
        assert_eq!(
            number(&q, "VisibilityTimeout"),
            b.visibility_timeout.as_secs(),
            "{queue} VisibilityTimeout"
        );
    }
    assert_eq!(
        number(&resource(&t, "WebhookIntakeFunction"), "Timeout"),
        budget::INTAKE_FUNCTION_TIMEOUT.as_secs()
    );
    assert_eq!(
        number(&resource(&t, "ReconnectReminderFunction"), "Timeout"),
        budget::REMINDER_FUNCTION_TIMEOUT.as_secs()
    );
    assert_eq!(
        number(&resource(&t, "MonitoringApiFunction"), "Timeout"),
        budget::API_FUNCTION_TIMEOUT.as_secs()
    );
    assert_eq!(
        number(&resource(&t, "MonitoringSyncFunction"), "Timeout"),
        budget::SYNC_FUNCTION_TIMEOUT.as_secs()
    );
}

/// The HttpApi events of a function: (method, path, authorizer) each.
fn http_events(block: &str) -> Vec<(String, String, Option<String>)> {
    let mut events = Vec::new();
    let mut current: Option<(String, String, Option<String>)> = None;
    for line in block.lines().map(str::trim) {
        if line.starts_with("Type: ") {
            events.extend(current.take());
            if line == "Type: HttpApi" {
                current = Some(Default::default());
            }
        } else if let Some(event) = current.as_mut() {
            if let Some(path) = line.strip_prefix("Path: ") {
                event.1 = path.to_owned();
            } else if let Some(method) = line.strip_prefix("Method: ") {
                event.0 = method.to_owned();
            } else if let Some(auth) = line.strip_prefix("Authorizer: ") {
                event.2 = Some(auth.to_owned());
            }
        }
    }
    events.extend(current);
    events
}

/// `function`'s HttpApi routes are exactly the handler's `served` ones, each behind `authorizer`.
fn assert_routes(t: &str, function: &str, served: &[(&str, &str)], authorizer: &str) {
    let events = http_events(&resource(t, function));
    let mut wired: Vec<(String, String)> = events
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    let mut served: Vec<(String, String)> = served
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    wired.sort();
    served.sort();
    assert_eq!(
        wired, served,
        "{function}: template routes = the handler's routes"
    );
    for (method, path, auth) in &events {
        assert_eq!(
            auth.as_deref(),
            Some(authorizer),
            "{function}: {method} {path}"
        );
    }
}

#[test]
fn every_monitoring_api_route_is_wired_and_iam_authorized() {
    let t = template();
    assert_routes(
        &t,
        "MonitoringApiFunction",
        monitoring_api::ROUTES,
        "AWS_IAM",
    );
    // The webhook stays open (Canopy signs its bodies; it cannot sign SigV4).
    let intake = http_events(&resource(&t, "WebhookIntakeFunction"));
    assert_eq!(intake.len(), 1);
    assert_eq!(intake[0].2, None);
}

#[test]
fn every_reconnect_route_is_wired_behind_the_jwt_authorizer() {
    let t = template();
    assert_routes(
        &t,
        "ReconnectApiFunction",
        reconnect_api::ROUTES,
        "ConsumerJwt",
    );
    // The reconnect API is an HTTP API of its own, which exists only with the JWT settings.
    let api = resource(&t, "ReconnectHttpApi");
    for needle in [
        "Condition: HasReconnectApi",
        "ConsumerJwt:",
        "issuer: !Ref ConsumerJwtIssuer",
        "- !Ref ConsumerJwtAudience",
    ] {
        assert!(api.contains(needle), "ReconnectHttpApi lacks {needle:?}");
    }
    assert_eq!(
        resource(&t, "ReconnectApiFunction")
            .matches("ApiId: !Ref ReconnectHttpApi")
            .count(),
        reconnect_api::ROUTES.len(),
        "every reconnect route is on ReconnectHttpApi"
    );
    assert_eq!(
        number(&resource(&t, "ReconnectApiFunction"), "Timeout"),
        canopy_monitor::app::budget::API_FUNCTION_TIMEOUT.as_secs()
    );
}

#[test]
fn the_openapi_document_describes_exactly_the_served_routes() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/monitoring-api.openapi.json"
    ))
    .expect("docs/monitoring-api.openapi.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if !["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                continue;
            }
            documented.push((method.to_ascii_uppercase(), path.clone()));
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: a success answer"
            );
            assert!(
                responses.contains_key("400") && responses.contains_key("403"),
                "{method} {path}: bad input and IAM refusals are documented"
            );
            // Path parameters are declared.
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let params = op["parameters"]
                    .as_array()
                    .into_iter()
                    .chain(item["parameters"].as_array())
                    .flatten();
                let mut found = false;
                for p in params {
                    let p = match p.get("$ref").and_then(|r| r.as_str()) {
                        Some(r) => {
                            &doc["components"]["parameters"]
                                [r.rsplit('/').next().unwrap_or_default()]
                        }
                        None => p,
                    };
                    found |= p["name"] == name && p["in"] == "path";
                }
                assert!(found, "{method} {path}: parameter {name}");
            }
        }
    }
    let mut served: Vec<(String, String)> = monitoring_api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    assert!(doc["components"]["securitySchemes"]["sigv4"].is_object());
}

/// The names of the resources of type `ty`, in template order.
fn resources_of_type(t: &str, ty: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current: Option<&str> = None;
    for line in t.lines() {
        if let Some(name) = line
            .strip_prefix("  ")
            .filter(|l| !l.starts_with(' '))
            .and_then(|l| l.strip_suffix(':'))
        {
            current = Some(name);
        } else if line == format!("    Type: {ty}") {
            names.extend(current.map(str::to_owned));
        }
    }
    names
}

/// What follows `key: ` on the first line of `block` that has it, trimmed.
fn value<'a>(block: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}: ");
    block
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&prefix))
}

#[test]
fn alarms_go_to_a_topic_cloudwatch_may_publish_to() {
    let t = template();
    // CloudWatch (and EventBridge, S3...) cannot use an AWS-managed key: its policy cannot
    // grant a service principal. Nothing a service writes to may be encrypted with one.
    for line in t.lines().filter(|l| l.contains("KmsMasterKeyId")) {
        assert!(
            !line.contains("alias/aws/"),
            "an AWS-managed key a service principal cannot use: {line}"
        );
    }
    let topics = resources_of_type(&t, "AWS::SNS::Topic");
    assert_eq!(topics, ["AlarmTopic"]);
    let topic = resource(&t, "AlarmTopic");
    let key_name = value(&topic, "KmsMasterKeyId")
        .and_then(|v| v.strip_prefix("!Ref "))
        .expect("the alarm topic is encrypted with a key of the stack's");
    let key = resource(&t, key_name);
    for needle in [
        "Type: AWS::KMS::Key",
        "EnableKeyRotation: true",
        "AWS: !Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:root",
        "Service: cloudwatch.amazonaws.com",
        "- kms:Decrypt",
        "- kms:GenerateDataKey*",
        "aws:SourceAccount: !Ref AWS::AccountId",
    ] {
        assert!(key.contains(needle), "{key_name} lacks {needle:?}:\n{key}");
    }
    // The topic's own policy lets this account's alarms publish.
    let policies = resources_of_type(&t, "AWS::SNS::TopicPolicy");
    let policy = policies
        .iter()
        .map(|p| resource(&t, p))
        .find(|p| p.contains("- !Ref AlarmTopic"))
        .expect("a topic policy for AlarmTopic");
    for needle in [
        "Service: cloudwatch.amazonaws.com",
        "Action: sns:Publish",
        "aws:SourceAccount: !Ref AWS::AccountId",
        ":alarm:*",
    ] {
        assert!(policy.contains(needle), "the topic policy lacks {needle:?}");
    }
    // Every alarm notifies that topic (or the operator's own).
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() > 10, "{alarms:?}");
    for alarm in alarms {
        let a = resource(&t, &alarm);
        assert!(
            a.contains("AlarmActions: [!If [HasAlarmTopic, !Ref AlarmTopicArn, !Ref AlarmTopic]]"),
            "{alarm} does not notify the alarm topic"
        );
    }
}

/// One IAM statement of a function's inline policy: its Sid, actions and LeadingKeys values.
#[derive(Debug, Default)]
struct Statement {
    sid: String,
    actions: Vec<String>,
    leading_keys: Vec<String>,
    /// The keys are under `ForAllValues:StringLike` (every key must match one).
    for_all_like: bool,
}

/// The statements of the `Policies` of a function (its resource text).
fn statements(function: &str) -> Vec<Statement> {
    let mut out: Vec<Statement> = Vec::new();
    let mut in_keys = false;
    for line in function.lines().map(str::trim) {
        if let Some(sid) = line.strip_prefix("- Sid: ") {
            out.push(Statement {
                sid: sid.to_owned(),
                ..Statement::default()
            });
            in_keys = false;
            continue;
        }
        let Some(s) = out.last_mut() else { continue };
        if line == "ForAllValues:StringLike:" {
            s.for_all_like = true;
        } else if line == "dynamodb:LeadingKeys:" {
            in_keys = true;
        } else if in_keys && line.starts_with("- ") {
            s.leading_keys
                .push(line.trim_start_matches("- ").trim_matches('"').to_owned());
        } else if !line.starts_with('#') {
            in_keys = false;
            let action = line
                .strip_prefix("Action: ")
                .or_else(|| line.strip_prefix("- "))
                .filter(|a| a.contains(':') && !a.contains(' '));
            s.actions.extend(action.map(str::to_owned));
        }
    }
    out
}

const DYNAMODB_WRITES: [&str; 5] = [
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:TransactWriteItems",
];

#[test]
fn every_function_writes_only_under_its_own_key_prefixes() {
    use canopy_monitor::adapters::dynamo::monitorings::REQUEST_PK_PREFIX as REQUEST;
    use canopy_monitor::adapters::dynamo::{
        EVENT_PK_PREFIX as EVENT, MONITORING_PK_PREFIX as MONITORING, PULL_PK_PREFIX as PULL,
    };
    // What each function writes (shared/src/adapters/dynamo: the key builders each store method
    // it calls uses). Outbox entries live on PULL# (FetchFailed) and MONITORING# items.
    let writes: [(&str, &[&str]); 7] = [
        ("WebhookIntakeFunction", &[EVENT, PULL, MONITORING]),
        ("PullFetcherFunction", &[PULL, MONITORING]),
        ("ReconnectNotifierFunction", &[MONITORING]),
        ("ReconnectReminderFunction", &[MONITORING]),
        ("MonitoringApiFunction", &[MONITORING, PULL, REQUEST]),
        ("MonitoringSyncFunction", &[MONITORING, PULL]),
        ("EventPublisherFunction", &[PULL, MONITORING]),
    ];
    let t = template();
    let functions = resources_of_type(&t, "AWS::Serverless::Function");
    for function in &functions {
        let block = resource(&t, function);
        let Some((_, prefixes)) = writes.iter().find(|(f, _)| f == function) else {
            // reconnect-api's sessions are limited in its own change.
            assert_eq!(
                function, "ReconnectApiFunction",
                "{function}: list its writes"
            );
            println!("{function}: its LeadingKeys condition is checked with reconnect-api");
            continue;
        };
        let mut expected: Vec<String> = prefixes.iter().map(|p| format!("{p}*")).collect();
        expected.sort();
        let written: Vec<Statement> = statements(&block)
            .into_iter()
            .filter(|s| {
                s.actions
                    .iter()
                    .any(|a| DYNAMODB_WRITES.contains(&a.as_str()))
            })
            .collect();
        assert!(!written.is_empty(), "{function} writes to the table");
        for mut s in written {
            s.leading_keys.sort();
            assert_eq!(
                s.leading_keys, expected,
                "{function} {}: dynamodb:LeadingKeys must be exactly its key prefixes",
                s.sid
            );
            assert!(
                s.for_all_like,
                "{function} {}: ForAllValues:StringLike (every key must match)",
                s.sid
            );
        }
    }
}

#[test]
fn no_allowed_log_level_turns_the_runtime_crates_to_trace() {
    let t = template();
    let parameter = resource(&t, "ApplicationLogLevel");
    let allowed = value(&parameter, "AllowedValues")
        .and_then(|v| v.strip_prefix('[')?.strip_suffix(']'))
        .expect("ApplicationLogLevel AllowedValues");
    let allowed: Vec<&str> = allowed.split(',').map(str::trim).collect();
    assert!(!allowed.contains(&"TRACE"), "{allowed:?}");
    assert_eq!(
        allowed,
        canopy_monitor::runtime::observability::LOG_LEVELS,
        "the template's levels are the code's"
    );
}

/// The template's parameters, in order: each name and whether it has a `Default`.
fn parameters(t: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    let mut in_parameters = false;
    for line in t.lines() {
        if !line.is_empty() && !line.starts_with([' ', '#']) {
            in_parameters = line == "Parameters:";
        } else if !in_parameters {
            continue;
        } else if let Some(name) = line
            .strip_prefix("  ")
            .filter(|l| !l.starts_with([' ', '#']))
            .and_then(|l| l.strip_suffix(':'))
        {
            out.push((name.to_owned(), false));
        } else if line.starts_with("    Default:") {
            if let Some(last) = out.last_mut() {
                last.1 = true;
            }
        }
    }
    out
}

/// `sam deploy --guided` asks every parameter: at most 20, only the team id without a default,
/// each one used, and the ones the operator CLI reads from a deployed stack still there.
#[test]
fn a_guided_deploy_asks_at_most_twenty_questions() {
    let t = template();
    let parameters = parameters(&t);
    let names: Vec<&str> = parameters.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        (1..=20).contains(&parameters.len()),
        "{} parameters, at most 20: {names:?}",
        parameters.len()
    );
    let without_default: Vec<&str> = parameters
        .iter()
        .filter(|(_, has_default)| !has_default)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        without_default,
        ["CanopyTeamId"],
        "only the team id is required"
    );
    for name in &names {
        assert!(
            t.contains(&format!("!Ref {name}\n"))
                || t.contains(&format!("!Ref {name}]"))
                || t.contains(&format!("!Ref {name},"))
                || t.contains(&format!("${{{name}}}")),
            "parameter {name} is used nowhere"
        );
        // Each is in one of the groups the console shows (Metadata, AWS::CloudFormation::Interface).
        assert_eq!(
            t.matches(&format!("          - {name}\n")).count(),
            1,
            "parameter {name} is in exactly one ParameterGroup"
        );
    }
    for name in [
        "CanopyTeamId",
        "CanopyKeyType",
        "CanopySourceName",
        "AdditionalSources",
        "CanopyBaseUrl",
        "EmailFromAddress",
        "SmsEnabled",
        "OutboundWebhookUrl",
        "AlarmTopicArn",
        "AlarmEmail",
        "ConsumerJwtIssuer",
        "ConsumerJwtAudience",
        "PullDataRetentionDays",
        canopy_ops::OWNER_KEY_PARAMETER,
    ] {
        assert!(
            names.contains(&name),
            "template.yaml lacks parameter {name}"
        );
    }
}

/// Build output, virtualenvs and local state never go into git (they were committed once).
#[test]
fn no_build_output_is_tracked() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let listed = std::process::Command::new("git")
        .args(["ls-files", "--", ".aws-sam", "target", ".venv", ".local"])
        .current_dir(root)
        .output();
    match listed {
        Ok(out) if out.status.success() => {
            let files = String::from_utf8_lossy(&out.stdout);
            assert!(files.trim().is_empty(), "tracked build output:\n{files}");
        }
        _ => println!("not a git checkout (or no git): the tracked-files check is skipped"),
    }
}

/// Whether `names` holds `name`.
fn has(names: &[String], name: &str) -> bool {
    names.iter().any(|n| n == name)
}

/// The logical ids of the resources a stack has with these parameter values:
/// `scripts/render_template.py` (the SAM translation, then each resource's Condition).
fn rendered_resources(parameters: &[&str]) -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh once, which installs the Python tools (.venv) \
         this test renders template.yaml with",
        python.display()
    );
    let out = std::process::Command::new(&python)
        .arg(root.join("scripts/render_template.py"))
        // The SAM translation itself, never the fallback listing.
        .arg("--require-sam")
        .args(parameters)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        out.status.success(),
        "scripts/render_template.py {parameters:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "scripts/render_template.py printed no JSON list of names ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn optional_parts_exist_only_when_configured() {
    let minimal = rendered_resources(&["CanopyTeamId=team"]);
    let full = rendered_resources(&[
        "CanopyTeamId=team",
        "ConsumerJwtIssuer=https://issuer.example",
        "ConsumerJwtAudience=aud",
        "EmailFromAddress=a@example.com",
        "SmsEnabled=true",
        "OutboundWebhookUrl=https://hooks.example/canopy",
        "AdditionalSources=sandbox=t2:sandbox",
    ]);
    // Every stack: webhook intake, fetching, state, the Monitoring API, events out, operations.
    let always = [
        "HttpApi",
        "WebhookIntakeFunction",
        "WebhookSigningSecret",
        "PullFetcherFunction",
        "CanopyApiSecret",
        "ReconnectNotifierFunction",
        "ReconnectReminderFunction",
        "MonitoringApiFunction",
        "MonitoringSyncFunction",
        "EventPublisherFunction",
        "EventBus",
        "StateTable",
        "FetchQueue",
        "FetchDeadLetterQueue",
        "NotifyQueue",
        "NotifyDeadLetterQueue",
        "Dashboard",
        "AlarmTopic",
    ];
    // Only when configured: the in-app reconnect API (its own HTTP API, which holds the JWT
    // authorizer, CORS and the routes) and the outbound webhook's secret.
    let reconnect = [
        "ReconnectHttpApi",
        "ReconnectApiFunction",
        "ReconnectApiLogGroup",
        "ReconnectApiErrorsAlarm",
        "ReconnectApiThrottlesAlarm",
        "ReconnectApi5xxAlarm",
        "ReconnectApi4xxRateAlarm",
    ];
    let optional: Vec<&str> = reconnect
        .into_iter()
        .chain(["OutboundWebhookSecret"])
        .collect();
    for name in always {
        assert!(
            has(&minimal, name),
            "the minimal stack lacks {name}: {minimal:?}"
        );
        assert!(has(&full, name), "the full stack lacks {name}: {full:?}");
    }
    for name in optional {
        assert!(!has(&minimal, name), "the minimal stack has {name}");
        assert!(has(&full, name), "the full stack lacks {name}: {full:?}");
    }
    // Every alarm but the reconnect API's is in every stack.
    let t = template();
    for alarm in resources_of_type(&t, "AWS::CloudWatch::Alarm") {
        assert!(
            has(&minimal, alarm.as_str()) || reconnect.contains(&alarm.as_str()),
            "the minimal stack lacks {alarm}"
        );
        assert!(has(&full, alarm.as_str()), "the full stack lacks {alarm}");
    }
    // The full stack adds the optional parts and what SAM makes for them (role, permissions,
    // stage), nothing else, and takes nothing away.
    for name in &minimal {
        assert!(has(&full, name.as_str()), "the full stack lacks {name}");
    }
    for name in full.iter().filter(|r| !has(&minimal, r.as_str())) {
        assert!(
            name.starts_with("ReconnectApi")
                || name.starts_with("ReconnectHttpApi")
                || name == "OutboundWebhookSecret",
            "{name} is in the full stack only"
        );
    }
    // The JWT authorizer is only on the reconnect API; the stack's own API has none (and no CORS).
    let api = resource(&t, "HttpApi");
    assert!(
        !api.contains("ConsumerJwt") && !api.contains("CorsConfiguration"),
        "{api}"
    );
    assert!(resource(&t, "ReconnectHttpApi").contains("ConsumerJwt:"));
    // Email and SMS are no resources: the notifier's SES and SNS grants are there only when on,
    // and it reads the webhook's secret only when there is one.
    let notifier = resource(&t, "ReconnectNotifierFunction");
    for needle in [
        "          - EmailOn\n",
        "          - SmsOn\n",
        "- !If [WebhookOn, !Ref OutboundWebhookSecret, !Ref AWS::NoValue]",
        "OUTBOUND_WEBHOOK_SECRET_ID: !If [WebhookOn, !Ref OutboundWebhookSecret, \"\"]",
    ] {
        assert!(
            notifier.contains(needle),
            "ReconnectNotifierFunction lacks {needle:?}"
        );
    }
}
