//! Offline checks of `deploy/`: the Kubernetes manifests against the Kubernetes schemas
//! (kubernetes-validate, pinned in deploy/requirements.txt, installed by `make deploy-deps`,
//! run without a network), their agreement with each other and with the real binary (the
//! StatefulSet's arguments start a real shard; the ConfigMap's account files pass `qqfleet
//! check`), the systemd unit through `systemd-analyze verify`, and the container file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_qqfleet");
const INSTALL: &str = "run `make deploy-deps` (a pinned venv under target/)";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin(name: &str) -> PathBuf {
    let p = repo().join("target/deploy-venv/bin").join(name);
    assert!(p.exists(), "{} not found; {INSTALL}", p.display());
    p
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

/// Every document of a YAML file, through the venv's PyYAML.
fn yaml(path: &Path) -> Vec<Value> {
    let out = Command::new(venv_bin("python"))
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kind<'a>(docs: &'a [(PathBuf, Value)], k: &str) -> &'a Value {
    &docs
        .iter()
        .find(|(_, d)| d["kind"] == k)
        .unwrap_or_else(|| panic!("no {k} in deploy/kubernetes"))
        .1
}

fn all_docs() -> Vec<(PathBuf, Value)> {
    manifests()
        .into_iter()
        .flat_map(|p| yaml(&p).into_iter().map(move |d| (p.clone(), d)))
        .collect()
}

/// Runs kubernetes-validate on `files`, without a network when the sandbox allows it (it must
/// work from its bundled schemas alone).
fn validate(files: &[PathBuf], version: &str) -> (bool, String) {
    let kv = venv_bin("kubernetes-validate");
    let offline = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = if offline {
        let mut c = Command::new("unshare");
        c.arg("-n").arg(&kv);
        c
    } else {
        Command::new(&kv)
    };
    let out = cmd
        .args(["--strict", "-k", version])
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn kubernetes_manifests_validate_offline_against_the_schemas() {
    let files: Vec<PathBuf> = manifests()
        .into_iter()
        // A custom resource of the Prometheus Operator: no Kubernetes schema has it;
        // `podmonitor_and_service_point_at_the_pods` checks it.
        .filter(|p| !p.ends_with("podmonitor.yaml"))
        .collect();
    assert!(files.len() >= 4, "{files:?}");
    for version in ["1.29.0", "1.37.0"] {
        let (ok, text) = validate(&files, version);
        assert!(ok, "kubernetes {version}:\n{text}");
        for kind in [
            "statefulset/qqfleet",
            "service/qqfleet",
            "configmap/qqfleet-accounts",
        ] {
            assert!(
                text.contains(&format!("passed for resource {kind}")),
                "{text}"
            );
        }
    }
    // The validator is not a rubber stamp: a misspelled field fails.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("statefulset.yaml");
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes/statefulset.yaml")).unwrap();
    std::fs::write(
        &bad,
        text.replacen(
            "terminationGracePeriodSeconds:",
            "terminationGracePeriodSecond:",
            1,
        ),
    )
    .unwrap();
    let (ok, text) = validate(&[bad], "1.37.0");
    assert!(
        !ok && text.contains("terminationGracePeriodSecond"),
        "{text}"
    );
}

fn container(sts: &Value) -> &Value {
    &sts["spec"]["template"]["spec"]["containers"][0]
}

fn args(sts: &Value) -> Vec<String> {
    container(sts)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn arg_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("{flag}=")).map(String::from))
}

#[test]
fn statefulset_is_what_a_shard_needs() {
    let docs = all_docs();
    let sts = kind(&docs, "StatefulSet");
    let a = args(sts);
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(
        arg_value(&a, "--shards").unwrap(),
        replicas.to_string(),
        "--shards must equal replicas"
    );
    assert!(a.contains(&"--shard-from-hostname".to_string()));
    let pod = &sts["spec"]["template"]["spec"];
    let c = container(sts);
    // Liveness and readiness on the real paths.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    // Longer than the drain (SIGTERM: 4.5 s for the accounts, then the flush).
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 15);
    // Non-root, read-only root filesystem, nothing to escalate.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    // --data on the per-pod claim, --handoff on the shared RWX claim, accounts and the token
    // from the ConfigMap and the Secret.
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount_of = |path: &str| -> String {
        mounts
            .iter()
            .filter(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
            .max_by_key(|m| m["mountPath"].as_str().unwrap().len())
            .unwrap_or_else(|| panic!("{path} is on no volume (the root filesystem is read-only)"))
            ["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(
        mount_of(&arg_value(&a, "--data").unwrap()),
        claim["metadata"]["name"]
    );
    let volumes = pod["volumes"].as_array().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap().clone();
    let handoff = volume(&mount_of(&arg_value(&a, "--handoff").unwrap()));
    let pvc = kind(&docs, "PersistentVolumeClaim");
    assert_eq!(
        handoff["persistentVolumeClaim"]["claimName"],
        pvc["metadata"]["name"]
    );
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");
    let accounts = volume(&mount_of(&arg_value(&a, "--accounts").unwrap()));
    assert_eq!(
        accounts["configMap"]["name"],
        kind(&docs, "ConfigMap")["metadata"]["name"]
    );
    let token = volume(&mount_of(&arg_value(&a, "--admin-token-file").unwrap()));
    assert!(token["secret"]["secretName"].is_string());
    // The README tells how to create that Secret, with the key the pod reads.
    let readme = std::fs::read_to_string(repo().join("deploy/kubernetes/README.md")).unwrap();
    let secret = token["secret"]["secretName"].as_str().unwrap();
    let key = Path::new(&arg_value(&a, "--admin-token-file").unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        readme.contains(&format!("create secret generic {secret}"))
            && readme.contains(&format!("--from-literal={key}=")),
        "README must create Secret {secret} with key {key}"
    );
    // The README's reshard patch replaces the --shards argument, not another one.
    let idx: usize = readme
        .split("/spec/template/spec/containers/0/args/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .expect("the README's reshard patch");
    assert!(a[idx].starts_with("--shards="), "args[{idx}] is {}", a[idx]);
    // The scrape annotations name the container's port.
    let ann = &sts["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(
        ann["prometheus.io/port"].as_str().unwrap(),
        c["ports"][0]["containerPort"].as_u64().unwrap().to_string()
    );
}

#[test]
fn podmonitor_and_service_point_at_the_pods() {
    let docs = all_docs();
    let sts = kind(&docs, "StatefulSet");
    let labels = &sts["spec"]["template"]["metadata"]["labels"];
    let port = container(sts)["ports"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let svc = kind(&docs, "Service");
    assert_eq!(svc["spec"]["clusterIP"], "None", "headless");
    assert_eq!(sts["spec"]["serviceName"], svc["metadata"]["name"]);
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "Service selector {k}");
    }
    let pm = kind(&docs, "PodMonitor");
    assert_eq!(pm["apiVersion"], "monitoring.coreos.com/v1");
    for (k, v) in pm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "PodMonitor selector {k}");
    }
    let ep = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(ep["port"].as_str().unwrap(), port);
    assert_eq!(ep["path"], "/metrics");
}

/// The ConfigMap's account files pass `qqfleet check`, and the StatefulSet's own arguments
/// start a real shard (as pod `qqfleet-1`), with the paths moved into a temporary folder.
#[test]
fn the_manifests_arguments_run_the_real_binary() {
    let docs = all_docs();
    let dir = tempfile::tempdir().unwrap();
    let acc = dir.path().join("accounts");
    std::fs::create_dir_all(&acc).unwrap();
    let cm = kind(&docs, "ConfigMap");
    for (name, body) in cm["data"].as_object().unwrap() {
        assert!(name.ends_with(".toml"), "{name}");
        std::fs::write(acc.join(name), body.as_str().unwrap()).unwrap();
    }
    let out = Command::new(BIN)
        .args(["check", "--accounts"])
        .arg(&acc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let sts = kind(&docs, "StatefulSet");
    std::fs::write(
        dir.path().join("token"),
        "manifest-check-token-0123456789\n",
    )
    .unwrap();
    let moved: Vec<String> = args(sts)
        .into_iter()
        .map(|a| {
            let (flag, _) = a.split_once('=').unwrap_or((&a, ""));
            let to = |p: &Path| format!("{flag}={}", p.display());
            match flag {
                "--accounts" => to(&acc),
                "--data" => to(&dir.path().join("data")),
                "--handoff" => to(&dir.path().join("handoff")),
                "--admin-token-file" => to(&dir.path().join("token")),
                "--listen" => "--listen=127.0.0.1:0".into(),
                _ => a,
            }
        })
        .collect();
    // Tests talk only to 127.0.0.1: the accounts point at a closed loopback port instead of
    // the real hosts.
    let mut child = Command::new(BIN)
        .args(&moved)
        .arg("--sim-url=http://127.0.0.1:9")
        .env("HOSTNAME", "qqfleet-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.starts_with("shard:") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("the manifest's arguments start a shard");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    assert!(line.contains(&format!("1/{replicas}")), "{line}");
}

#[test]
fn systemd_unit_verifies() {
    let unit = repo().join("deploy/systemd/qqfleet.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for want in [
        "DynamicUser=yes",
        "StateDirectory=qqfleet",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(text.contains(want), "{want}");
    }
    let verify = |path: &Path| {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(path)
            .output()
            .expect("systemd-analyze (Debian package systemd)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // As shipped, the only complaint on a machine without the installed binary is that one.
    let (_, err) = verify(&unit);
    let other: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("/usr/local/bin/qqfleet is not executable"))
        .collect();
    assert!(other.is_empty(), "{err}");
    // With ExecStart pointing at the binary just built (the one change), it verifies clean:
    // no error and no warning (unknown keys are only warnings, so stderr must be empty).
    let dir = tempfile::tempdir().unwrap();
    const EXEC: &str = "ExecStart=/usr/local/bin/qqfleet ";
    assert_eq!(text.matches(EXEC).count(), 1);
    let built = format!("ExecStart={BIN} ");
    let here = dir.path().join("qqfleet.service");
    std::fs::write(&here, text.replace(EXEC, &built)).unwrap();
    let (ok, err) = verify(&here);
    assert!(ok && err.trim().is_empty(), "{err}");
    // And a misspelled directive is reported.
    std::fs::write(
        &here,
        text.replace(EXEC, &built)
            .replace("NoNewPrivileges=", "NoNewPrivilege="),
    )
    .unwrap();
    let (_, err) = verify(&here);
    assert!(err.contains("NoNewPrivilege"), "{err}");
}

#[test]
fn containerfile_is_multistage_and_non_root() {
    let text = std::fs::read_to_string(repo().join("deploy/container/Containerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let runtime = &lines[last_from..];
    assert!(runtime
        .iter()
        .any(|l| l.starts_with("COPY --from=build") && l.contains("qqfleet")));
    assert!(
        !runtime.iter().any(|l| l.contains("cargo")),
        "no toolchain in the runtime stage"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric uid");
    assert!(uid >= 1000, "non-root: {user}");
    // The image writes only to its volume (the data folder the CMD uses).
    let volume = runtime
        .iter()
        .find_map(|l| l.strip_prefix("VOLUME "))
        .expect("VOLUME");
    let cmd = runtime.iter().find(|l| l.starts_with("CMD ")).unwrap();
    let data = cmd
        .split("--data=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let vol: Vec<String> = serde_json::from_str(volume).unwrap();
    assert!(data.starts_with(&vol[0]), "{data} not on {vol:?}");
}
