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
fn every_setting_is_set_by_the_template() {
    let t = template();
    for (function, names) in [
        (
            "WebhookIntakeFunction",
            canopy_monitor::config::INTAKE_ENV_VARS,
        ),
        (
            "PullFetcherFunction",
            canopy_monitor::config::FETCHER_ENV_VARS,
        ),
        (
            "ReconnectNotifierFunction",
            canopy_monitor::config::NOTIFIER_ENV_VARS,
        ),
        (
            "ReconnectReminderFunction",
            canopy_monitor::config::REMINDER_ENV_VARS,
        ),
        (
            "MonitoringApiFunction",
            canopy_monitor::config::API_ENV_VARS,
        ),
        (
            "MonitoringSyncFunction",
            canopy_monitor::config::SYNC_ENV_VARS,
        ),
        (
            "ReconnectApiFunction",
            canopy_monitor::config::RECONNECT_ENV_VARS,
        ),
    ] {
        let block = resource(&t, function);
        for name in names {
            assert!(
                block.contains(&format!("          {name}: ")),
                "{function} does not set {name}"
            );
        }
    }
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
        "ScheduleExpression: !Ref SyncSchedule",
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
    use canopy_monitor::budget::{self, ConsumerBudget};
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
    let api = resource(&t, "HttpApi");
    for needle in [
        "ConsumerJwt:",
        "issuer: !Ref ConsumerJwtIssuer",
        "- !Ref ConsumerJwtAudience",
    ] {
        assert!(api.contains(needle), "HttpApi lacks {needle:?}");
    }
    assert_eq!(
        number(&resource(&t, "ReconnectApiFunction"), "Timeout"),
        canopy_monitor::budget::API_FUNCTION_TIMEOUT.as_secs()
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
