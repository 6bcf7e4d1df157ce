//! Languages other than python, when their runner images are installed: each offered runner
//! reports its version, and a hello world runs in C and JavaScript.

use workers::exec::{DockerConfig, Language, Sandbox};

use crate::{Harness, exec_args, unique_owner};

#[tokio::test]
async fn c_and_javascript_say_hello() {
    let mut config =
        DockerConfig::new(&exec_args(&["--exec-memory-mb=128", "--exec-timeout-ms=10000"]), unique_owner());
    config.languages = ["c", "javascript"].into_iter().filter_map(Language::find).collect();
    let harness = Harness::start_with(config);
    harness.wait_probed().await;
    let languages = harness.sandbox.languages();
    for id in ["c", "javascript"] {
        let info = languages.iter().find(|language| language.id == id);
        assert!(
            info.is_some_and(|info| info.available && info.version.is_some()),
            "the {id} runner is not available ({info:?}): build it with deploy/runners/build-offline.sh"
        );
    }
    let c = harness
        .run("c", "#include <stdio.h>\nint main(void) { puts(\"hello from C\"); return 3; }", "")
        .await
        .expect("a C run");
    assert_eq!(c.stdout_text(), "hello from C\n", "{c}");
    assert_eq!(c.report.exit_code, Some(3), "{c}");
    let js = harness
        .run("javascript", "console.log('hello from ' + 'JavaScript')", "")
        .await
        .expect("a JavaScript run");
    js.assert_ok();
    assert_eq!(js.stdout_text(), "hello from JavaScript\n");
    harness.finish().await;
}

#[tokio::test]
async fn every_runner_reports_its_version() {
    // The production limits (128 MiB, half a core): a runner that cannot report its version in
    // them could not run a program either.
    let config = DockerConfig::new(&exec_args(&["--exec-memory-mb=128", "--exec-cpus=0.5"]), unique_owner());
    let harness = Harness::start_with(config);
    harness.wait_probed().await;
    let languages = harness.sandbox.languages();
    let summary: Vec<String> = languages
        .iter()
        .map(|language| format!("{} {:?} {}", language.id, language.version, language.available))
        .collect();
    eprintln!("runners: {summary:#?}");
    for language in &languages {
        assert!(language.available && language.version.is_some(), "{summary:#?}");
    }
    harness.finish().await;
}
