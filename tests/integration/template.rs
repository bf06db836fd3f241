//! template.yaml and the code must agree on names: cfn-lint cannot see that.

use devkit::resources::MAX_RECEIVE_COUNT;

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml")
}

#[test]
fn every_intake_setting_is_set_by_the_template() {
    let t = template();
    for name in canopy_monitor::config::INTAKE_ENV_VARS {
        assert!(
            t.contains(&format!("          {name}: ")),
            "template.yaml does not set {name}"
        );
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
