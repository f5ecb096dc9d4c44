//! Checks that need the emulator: the node pool's instance types read from EC2 in the
//! region during the plan's first round (GPUs, instance store, zones; a type the region does
//! not have stops the plan before any write), and destroy's confirmation without a terminal.

use crate::support::*;

#[test]
fn plan_notes_each_instance_types_gpus_instance_store_and_zones() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::new(&full_sandbox_yaml());
    let plan = workspace.run(&proxy.endpoint, &["plan"]).expect(0).stdout;
    // moto's us-west-2: g6.2xlarge in four zones, g5.2xlarge in three.
    for note in [
        "note: instance type g6.2xlarge: 1 × NVIDIA L4, 8 vCPUs, 32 GiB memory, 450 GB instance store for the model cache; offered in us-west-2a, us-west-2b, us-west-2c, us-west-2d",
        "note: instance type g5.2xlarge: 1 × NVIDIA A10G, 8 vCPUs, 32 GiB memory, 450 GB instance store for the model cache; offered in us-west-2a, us-west-2b, us-west-2c",
    ] {
        assert!(plan.contains(note), "`{note}` in\n{plan}");
    }
    let calls: Vec<String> = proxy.requests().iter().map(|r| r.action.clone()).collect();
    for action in ["DescribeInstanceTypes", "DescribeInstanceTypeOfferings"] {
        assert_eq!(
            calls.iter().filter(|c| *c == action).count(),
            1,
            "{action} once: {calls:?}"
        );
    }
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());
}

#[test]
fn an_instance_type_the_region_does_not_have_stops_plan_and_apply_before_any_write() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    // p3.2xlarge is a known NVIDIA type (validate accepts it), but moto's us-west-2 has none.
    let workspace = Workspace::new(&full_sandbox_yaml().replace(
        "instance_types: [g6.2xlarge, g5.2xlarge]",
        "instance_types: [g6.2xlarge, p3.2xlarge]",
    ));
    workspace.run(&proxy.endpoint, &["validate"]).expect(0);
    for args in [vec!["plan"], vec!["apply", "--yes"]] {
        let run = workspace.run(&proxy.endpoint, &args).expect(1);
        assert!(
            run.stderr
                .contains("the node pool's instance types cannot run ComfyUI in us-west-2")
                && run
                    .stderr
                    .contains("`p3.2xlarge` is not available in us-west-2"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("hint: change `karpenter.instance_types`"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("g6.2xlarge"), "{}", run.stderr);
    }
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());
    assert!(!workspace.state_file().exists());
}

#[test]
fn destroy_without_a_terminal_or_yes_says_destroy_needs_confirmation() {
    let emulator = Emulator::start();
    let workspace = Workspace::sandbox();
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    // stdin is not a terminal (the harness gives /dev/null).
    let run = workspace.run(&emulator.endpoint, &["destroy"]).expect(1);
    assert!(
        run.stderr
            .contains("error: destroy needs confirmation, and there is no terminal to ask on"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("apply needs"), "{}", run.stderr);
    assert!(
        run.stderr.contains("comfyplat destroy --yes"),
        "{}",
        run.stderr
    );
    // Nothing was deleted.
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}
