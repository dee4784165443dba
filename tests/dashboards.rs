//! Offline checks of `dashboards/`: the Grafana dashboard's structure, the PromQL syntax of
//! every panel (through promtool), the metric contract against a real exposition, the
//! provisioning files, the scrape config, and the alert rules with their unit tests.
//!
//! Grafana cannot be installed here, so the dashboard is checked in layers; the last layer,
//! evaluation through a real Prometheus, is in `metrics_prometheus.rs`.

mod metrics_harness;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use metrics_harness::{
    all_panels, dashboard, metric_names, panel_queries, promtool, repo, series_lines, series_name,
    substitute, Macros,
};
use qqfleet::events::{
    emit, render_metrics, AccountStateChanged, ActorRestarted, LoginFinished, LoginMethod,
    MessageReceived, MessageSent, OutboxDepth, PollCompleted, RateLimited, ReconnectKind,
    ReconnectStarted, RetcodeReceived, SessionForecast,
};
use qqfleet::fleet::AccountState;

/// The uid the provisioned datasource has and the dashboard selects by default.
const DATASOURCE_UID: &str = "qqfleet-prometheus";

fn grafana_macros() -> Macros {
    Macros {
        rate_interval: "1m".into(),
        interval: "15s".into(),
        range: "1h".into(),
        account: ".*".into(),
    }
}

#[test]
fn dashboard_structure_is_what_grafana_needs() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "schemaVersion");
    assert_eq!(d["uid"], "qqfleet");
    assert!(!d["title"].as_str().unwrap().is_empty());

    // Template variables: the datasource one (defaulting to the provisioned uid) and account.
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let names: HashSet<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    let ds = vars
        .iter()
        .find(|v| v["name"] == "DS_PROMETHEUS")
        .expect("DS_PROMETHEUS variable");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    assert_eq!(ds["current"]["value"], DATASOURCE_UID);
    let account = vars
        .iter()
        .find(|v| v["name"] == "account")
        .expect("account variable");
    assert_eq!(account["type"], "query");
    assert!(account["definition"]
        .as_str()
        .unwrap()
        .contains("label_values(qqfleet_account_up, account)"));
    assert_eq!(account["includeAll"], true);
    assert_eq!(account["allValue"], ".*");

    let panels = all_panels(&d);
    let mut ids = HashSet::new();
    let mut cells: HashSet<(u64, u64)> = HashSet::new();
    for p in &panels {
        let id = p["id"].as_u64().expect("numeric panel id");
        assert!(ids.insert(id), "duplicate panel id {id}");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().expect("gridPos.x"),
            g["y"].as_u64().expect("gridPos.y"),
            g["w"].as_u64().expect("gridPos.w"),
            g["h"].as_u64().expect("gridPos.h"),
        );
        assert!(
            w > 0 && h > 0 && x + w <= 24,
            "panel {id} outside the 24-column grid"
        );
        // No two panels overlap.
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "panel {id} overlaps another at ({cx},{cy})"
                );
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert!(
            !p["title"].as_str().unwrap_or_default().is_empty(),
            "panel {id} has no title"
        );
        assert!(
            !p["description"].as_str().unwrap_or_default().is_empty(),
            "panel {id} has no description"
        );
        assert_eq!(
            p["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {id} datasource"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no query");
        let mut refs = HashSet::new();
        for t in targets {
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "panel {id}: duplicate refId"
            );
            assert_eq!(
                t["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {id} target datasource"
            );
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "panel {id} has an empty expression"
            );
            // Every variable used is defined (or a Grafana macro).
            for var in expr.split('$').skip(1) {
                let name: String = var
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    name.starts_with("__") || names.contains(name.as_str()),
                    "panel {id} uses undefined variable ${name}"
                );
            }
        }
    }
}

#[test]
fn dashboard_covers_every_family_and_filters_per_account_panels() {
    let d = dashboard();
    let queries = panel_queries(&d);
    let used: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(&q.expr)).collect();
    for family in [
        "qqfleet_accounts",
        "qqfleet_account_up",
        "qqfleet_account_state",
        "qqfleet_poll_duration_seconds_bucket",
        "qqfleet_reconnects_total",
        "qqfleet_retcodes_total",
        "qqfleet_logins_total",
        "qqfleet_messages_received_total",
        "qqfleet_messages_sent_total",
        "qqfleet_outbox_messages",
        "qqfleet_rate_limited_total",
        "qqfleet_actor_restarts_total",
        "qqfleet_messages_held_total",
        "qqfleet_duplicates_dropped_total",
        "qqfleet_build_info",
        "qqfleet_service_up",
        "qqfleet_store_flush_duration_seconds_bucket",
        "qqfleet_message_wait_seconds_bucket",
        "qqfleet_store_flush_writes_count",
        "qqfleet_store_flush_writes_sum",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_cpu_seconds_total",
    ] {
        assert!(used.contains(family), "no panel shows {family}");
    }
    // A family labelled by account is always filtered by the account variable, so choosing
    // an account drills the whole dashboard down to it.
    let per_account = [
        "qqfleet_account_up",
        "qqfleet_account_state",
        "qqfleet_reconnects_total",
        "qqfleet_retcodes_total",
        "qqfleet_logins_total",
        "qqfleet_messages_received_total",
        "qqfleet_messages_sent_total",
        "qqfleet_outbox_messages",
        "qqfleet_rate_limited_total",
        "qqfleet_messages_held_total",
    ];
    for q in &queries {
        for name in metric_names(&q.expr) {
            if per_account.contains(&name.as_str()) {
                let after = &q.expr[q.expr.find(&name).unwrap() + name.len()..];
                assert!(
                    after.starts_with('{')
                        && after[..after.find('}').unwrap()].contains("account=~\"$account\""),
                    "panel {} ({}) reads {name} without account=~\"$account\": {}",
                    q.panel_id,
                    q.title,
                    q.expr
                );
            }
        }
    }
}

/// Writes every panel expression (macros substituted) as a recording rule and lets promtool
/// parse them all; a broken expression is reported with its panel.
#[test]
fn every_panel_expression_is_valid_promql() {
    let d = dashboard();
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: panels\n    rules:\n");
    for q in panel_queries(&d) {
        let expr = substitute(&q.expr, &grafana_macros());
        assert!(!expr.contains('$'), "unsubstituted variable in {expr}");
        rules.push_str(&format!(
            "      - record: panel_{}_{}\n        expr: {}\n",
            q.panel_id,
            q.ref_id,
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let path = dir.path().join("panels.yml");
    std::fs::write(&path, &rules).unwrap();
    let (ok, out) = promtool(&["check", "rules", path.to_str().unwrap()], None, None);
    assert!(ok, "panel expressions do not parse:\n{out}\n{rules}");

    // The check is real: an unsubstituted macro is rejected, as Prometheus would.
    let bad = "groups:\n  - name: bad\n    rules:\n      - record: bad\n        expr: \"rate(qqfleet_logins_total[$__rate_interval])\"\n";
    std::fs::write(&path, bad).unwrap();
    let (ok, _) = promtool(&["check", "rules", path.to_str().unwrap()], None, None);
    assert!(!ok, "promtool accepted a Grafana macro as PromQL");
}

/// Every metric name a panel or an alert reads exists in a real exposition of qqfleet
/// (catches renames, the usual way dashboards break).
#[test]
fn every_metric_the_dashboard_and_alerts_read_is_exposed() {
    let a = "contract-a";
    for to in [
        AccountState::Starting,
        AccountState::AwaitingScan,
        AccountState::LoggingIn,
        AccountState::Online,
    ] {
        emit(AccountStateChanged {
            account: a,
            from: None,
            to,
            reason: None,
        });
    }
    emit(LoginFinished {
        account: a,
        method: LoginMethod::Qr,
        ok: true,
        reason: None,
    });
    emit(PollCompleted {
        account: a,
        outcome: "idle",
        elapsed: Duration::from_secs(60),
    });
    emit(RetcodeReceived {
        account: a,
        endpoint: "get_user_friends2",
        retcode: 6,
    });
    emit(ReconnectStarted {
        account: a,
        kind: ReconnectKind::Relogin,
        reason: "expired",
    });
    emit(MessageReceived {
        account: a,
        kind: "buddy",
        text: "hello",
        self_echo: false,
        waited: None,
    });
    emit(MessageSent {
        account: a,
        kind: "buddy",
        text: "hello",
        result: "delivered",
    });
    emit(OutboxDepth {
        account: a,
        depth: 1,
    });
    emit(RateLimited {
        account: a,
        limiter: "send",
        wait: Duration::from_millis(10),
    });
    emit(ActorRestarted {
        account: a,
        actor: "sender",
        reason: "test",
    });
    emit(SessionForecast {
        account: a,
        expires_at: Some(1_800_000_000),
    });
    let text = render_metrics();
    let exposed: HashSet<&str> = series_lines(&text).into_iter().map(series_name).collect();

    let alerts = std::fs::read_to_string(repo().join("dashboards/alerts.yml")).unwrap();
    let mut read: BTreeSet<String> = metric_names(&alerts).into_iter().collect();
    read.extend(
        panel_queries(&dashboard())
            .iter()
            .flat_map(|q| metric_names(&q.expr)),
    );
    assert!(read.len() > 10);
    for name in &read {
        assert!(
            exposed.contains(name.as_str()),
            "{name} is read by a panel or an alert but not exposed"
        );
    }
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = repo().join("dashboards");
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"], None, Some(&dir));
    assert!(ok, "promtool check rules:\n{out}");
    for alert in [
        "QQFleetAccountDown",
        "QQFleetReloginStorm",
        "QQFleetReconnectLoop",
        "QQFleetFriendListLockout",
        "QQFleetOutboxBacklogGrowing",
        "QQFleetMessageHeld",
        "QQFleetQrWaitingTooLong",
        "QQFleetOpenFilesNearLimit",
        "QQFleetScansDueWithin6h",
    ] {
        let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "no unit test for {alert}"
        );
    }
    let (ok, out) = promtool(&["test", "rules", "alerts_test.yml"], None, Some(&dir));
    assert!(ok, "promtool test rules:\n{out}");
}

#[test]
fn scrape_config_and_provisioning_agree() {
    let dir = repo().join("dashboards");
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"], None, Some(&dir));
    assert!(ok, "promtool check config:\n{out}");
    let prom = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    assert!(
        prom.contains("'127.0.0.1:9400'"),
        "scrapes the default --listen"
    );
    assert!(prom.contains("alerts.yml"), "loads the alert rules");

    let ds = std::fs::read_to_string(dir.join("provisioning/datasources/prometheus.yml")).unwrap();
    assert!(ds.contains(&format!("uid: {DATASOURCE_UID}")));
    assert!(ds.contains("type: prometheus"));
    let provider =
        std::fs::read_to_string(dir.join("provisioning/dashboards/qqfleet.yml")).unwrap();
    assert!(provider.contains("type: file"));
    assert!(provider.contains("path: $QQFLEET_DASHBOARDS"));
}

/// Several shards (`qqfleet run --shard I/N`) are several Prometheus instances: the dashboard
/// has an `instance` variable, every series it reads is filtered by it, and a fleet-wide count
/// of accounts leaves out `elsewhere` (every shard lists the others' accounts so; only the
/// owner counts an account in its real state).
#[test]
fn dashboard_works_across_shards() {
    let d = dashboard();
    let vars = d["templating"]["list"].as_array().unwrap();
    let inst = vars
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("instance variable");
    assert_eq!(inst["type"], "query");
    assert!(inst["definition"]
        .as_str()
        .unwrap()
        .contains("label_values(qqfleet_build_info, instance)"));
    assert_eq!(inst["includeAll"], true);
    assert_eq!(inst["multi"], true);
    assert_eq!(inst["allValue"], ".*");
    for q in panel_queries(&d) {
        for name in metric_names(&q.expr) {
            // Every occurrence of the series is narrowed to the chosen shards.
            for (at, _) in q.expr.match_indices(&name) {
                let after = &q.expr[at + name.len()..];
                if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    continue; // a longer name
                }
                assert!(
                    after.starts_with('{')
                        && after[..after.find('}').unwrap()].contains("instance=~\"$instance\""),
                    "panel {} ({}) reads {name} without instance=~\"$instance\": {}",
                    q.panel_id,
                    q.title,
                    q.expr
                );
            }
        }
        for (at, _) in q.expr.match_indices("qqfleet_accounts{") {
            let sel = &q.expr[at..at + q.expr[at..].find('}').unwrap()];
            assert!(
                sel.contains("state=\"") || sel.contains("state!=\"elsewhere\""),
                "panel {} ({}) counts accounts run elsewhere: {}",
                q.panel_id,
                q.title,
                q.expr
            );
        }
    }
}
