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

#[test]
fn the_fetcher_reports_batch_failures_and_its_queue_outlasts_it() {
    let t = template();
    let fetcher = resource(&t, "PullFetcherFunction");
    assert!(fetcher.contains("Binary: pull-fetcher"));
    assert!(fetcher.contains("- ReportBatchItemFailures"));
    assert!(fetcher.contains("      Timeout: 30\n"));
    let queue = resource(&t, "FetchQueue");
    assert!(queue.contains("VisibilityTimeout: 180"), "{queue}");
}
