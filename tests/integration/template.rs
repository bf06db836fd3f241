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
}
