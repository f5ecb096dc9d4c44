//! Faults that look like the real ones: every AWS service comfyplat calls throttles it in
//! that service's own protocol, status and code (the proxy's `fault_response`, checked with
//! botocore's parsers in `tests/emulators/test_emulators.py`): CloudFront's rest-xml
//! `<ErrorResponse>` `Throttling` (400), S3's `SlowDown` (503), IAM's and STS's query-XML
//! `Throttling` (400), EKS's rest-json `TooManyRequestsException` (429), ECR's awsJson
//! `ThrottlingException` (400) and the Tagging API's `ThrottledException` (400). The SDK
//! retries each (nobody retries on top of it): plan, apply, `output` and destroy converge,
//! and the proxy's log shows every throttled request sent again and answered.

use crate::support::*;

/// Throttled requests per command: fewer than the SDK's attempts, so its retries win.
const FAULTS: u32 = 2;

/// The whole sandbox with an image repository, so that every service is called.
fn platform() -> String {
    full_sandbox_yaml().replace(
        "\n# The ComfyUI workload",
        "\nimage_repository: {}\n# The ComfyUI workload",
    )
}

/// What one service answers when it throttles, and when comfyplat calls it.
struct Throttle {
    /// The signing name, as the proxy logs it.
    service: &'static str,
    status: u16,
    /// Whether comfyplat writes to it (apply and destroy then get their writes throttled).
    writes: bool,
    /// The commands of [`COMMANDS`] that call it; the others run without the proxy.
    calls: &'static [&'static str],
}

/// What every test runs, in this order.
const COMMANDS: [&str; 4] = ["plan", "apply", "output", "destroy"];

/// A proxy that throttles the first [`FAULTS`] requests (or writes) to `throttle.service`.
fn throttling(emulator: &Emulator, throttle: &Throttle, writes: bool) -> Proxy {
    Proxy::start(
        &emulator.endpoint,
        ProxyOptions {
            fault_rate: 1.0,
            fault_modes: Some("throttle".to_string()),
            fault_services: Some(throttle.service.to_string()),
            fault_writes: writes,
            fault_limit: Some(FAULTS),
            ..ProxyOptions::default()
        },
    )
}

/// Asserts that `proxy` throttled [`FAULTS`] requests to the service, in its status, and that
/// each was sent again afterwards and answered by the emulator.
fn assert_retried(proxy: &Proxy, throttle: &Throttle, command: &str, writes: bool) {
    let requests = proxy.requests();
    let throttled: Vec<&Logged> = requests.iter().filter(|r| r.fault.is_some()).collect();
    assert_eq!(
        throttled.len(),
        FAULTS as usize,
        "{command}: expected {FAULTS} throttled {} requests: {requests:#?}",
        throttle.service
    );
    for fault in throttled {
        assert_eq!(
            fault.fault.as_deref(),
            Some("throttle"),
            "{command}: {fault:?}"
        );
        assert_eq!(fault.service, throttle.service, "{command}: {fault:?}");
        assert_eq!(fault.status, throttle.status, "{command}: {fault:?}");
        assert!(
            !writes || fault.write,
            "{command}: a read throttled: {fault:?}"
        );
        let retried = requests.iter().any(|r| {
            r.ts >= fault.end
                && r.fault.is_none()
                && r.upstream_status.is_some()
                && (&r.service, &r.method, &r.path, &r.query, &r.action)
                    == (
                        &fault.service,
                        &fault.method,
                        &fault.path,
                        &fault.query,
                        &fault.action,
                    )
        });
        assert!(
            retried,
            "{command}: `{}` was throttled and never sent again: {requests:#?}",
            fault.action
        );
    }
}

/// Plan, apply, `output` and destroy, each with the service throttled where it calls it,
/// converge, and nothing of the platform is left.
fn converges_through(throttle: Throttle) {
    let emulator = Emulator::start();
    let workspace = Workspace::new(&platform());
    for command in COMMANDS {
        let writes = throttle.writes && matches!(command, "apply" | "destroy");
        let proxy = throttle
            .calls
            .contains(&command)
            .then(|| throttling(&emulator, &throttle, writes));
        let endpoint = proxy.as_ref().map_or(&emulator.endpoint, |p| &p.endpoint);
        let args: &[&str] = match command {
            "apply" | "destroy" => &[command, "--yes"],
            _ => &[command],
        };
        let run = workspace.run(endpoint, args).expect(0);
        match command {
            "plan" => assert!(run.stdout.contains("Plan: 29 to add"), "{}", run.stdout),
            // The outputs read the distribution: a throttled read there used to end in
            // "could not read the outputs".
            "apply" | "output" => {
                assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
                assert!(
                    run.stdout.contains("cloudfront.domain_name"),
                    "{}",
                    run.stdout
                );
            }
            _ => assert!(
                run.stderr
                    .contains("owned by comfyplat and still there: none"),
                "{}",
                run.stderr
            ),
        }
        if let Some(proxy) = &proxy {
            assert_retried(proxy, &throttle, command, writes);
        }
        if command == "apply" {
            workspace
                .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
                .expect(0);
        }
    }
    assert_eq!(workspace.state()["resources"], serde_json::json!({}));
}

#[test]
fn cloudfront_throttling_in_its_real_xml_shape_is_retried() {
    converges_through(Throttle {
        service: "cloudfront",
        status: 400,
        writes: true,
        calls: &["plan", "apply", "output", "destroy"],
    });
}

#[test]
fn s3_slowdown_in_its_real_xml_shape_is_retried() {
    converges_through(Throttle {
        service: "s3",
        status: 503,
        writes: true,
        calls: &["plan", "apply", "destroy"],
    });
}

#[test]
fn iam_throttling_in_its_real_query_xml_shape_is_retried() {
    converges_through(Throttle {
        service: "iam",
        status: 400,
        writes: true,
        calls: &["plan", "apply", "destroy"],
    });
}

#[test]
fn sts_throttling_in_its_real_query_xml_shape_is_retried() {
    converges_through(Throttle {
        service: "sts",
        status: 400,
        writes: false,
        calls: &["plan", "apply", "output", "destroy"],
    });
}

#[test]
fn eks_too_many_requests_in_its_real_rest_json_shape_is_retried() {
    converges_through(Throttle {
        service: "eks",
        status: 429,
        writes: true,
        calls: &["plan", "apply", "output", "destroy"],
    });
}

#[test]
fn ecr_throttling_in_its_real_aws_json_shape_is_retried() {
    converges_through(Throttle {
        service: "ecr",
        status: 400,
        writes: true,
        calls: &["plan", "apply", "output", "destroy"],
    });
}

/// The Tagging API is read by destroy's report only (what is left with the platform's tag).
#[test]
fn tagging_throttled_exception_in_its_real_aws_json_shape_is_retried() {
    converges_through(Throttle {
        service: "tagging",
        status: 400,
        writes: false,
        calls: &["destroy"],
    });
}
