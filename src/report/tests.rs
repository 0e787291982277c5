//! The report: received subtrees, failures counted, foreign shapes shown.

use super::*;

const DOWNSTREAM: &str = r#"{"Service":"b","ParallelForwards":[{"SequentialForwards":[{"Url":"http://c:8080/","Result":"ok","Protocol":"http","Status":200,"StartMs":0.1,"DurationMs":1.0,"Response":{"Service":"c","ParallelForwards":[]}}]}]}"#;

#[test]
fn failed_hops_of_a_received_report_are_counted_without_parsing_its_groups() {
    let failing = DOWNSTREAM.replacen(
        r#""Result":"ok","#,
        r#""Result":"status","Error":"answered 503","#,
        1,
    );
    let two_groups = failing.replacen(
        r#""ParallelForwards":[{"#,
        r#""ParallelForwards":[{"SequentialForwards":[{"Url":"http://d/","Result":"ok"}]},{"#,
        1,
    );
    for (text, failed) in [(DOWNSTREAM, 0), (&failing, 1), (&two_groups, 1)] {
        let report: Report = serde_json::from_str(text).unwrap();
        assert_eq!(report.failed_hops(), failed, "{text}");
        assert!(report.parallel_forwards.parsed.get().is_none(), "{text}");
        assert_eq!(
            report.forwards().filter(|f| f.error.is_some()).count(),
            failed
        );
    }
    // Groups of another shape are parsed, and so count as the failed
    // hop that says so.
    let odd: Report =
        serde_json::from_str(r#"{"Service":"b","ParallelForwards":[{"SequentialForwards":7}]}"#)
            .unwrap();
    assert_eq!(odd.failed_hops(), 1);
}

#[test]
fn received_subtrees_pass_through_unparsed_until_looked_at() {
    let report: Report = serde_json::from_str(DOWNSTREAM).unwrap();
    assert!(report.parallel_forwards.parsed.get().is_none());
    let again = serde_json::to_string(&report).unwrap();
    assert!(
        again.contains(r#""ParallelForwards":[{"SequentialForwards":[{"Url":"http://c:8080/""#),
        "{again}"
    );
    assert!(
        report.parallel_forwards.parsed.get().is_none(),
        "serializing does not parse"
    );
    let child = report
        .forwards()
        .next()
        .unwrap()
        .response
        .as_deref()
        .unwrap();
    assert_eq!(child.service, "c");
    report.parallel_forwards.expand();
    let pretty = serde_json::to_string_pretty(&report).unwrap();
    assert!(
        pretty.contains("\n            \"Service\": \"c\""),
        "expanded levels indent: {pretty}"
    );
}

#[test]
fn foreign_nested_shapes_show_as_a_failed_hop() {
    let text = r#"{"Service":"b","ParallelForwards":{"not":"a list"}}"#;
    let report: Report = serde_json::from_str(text).unwrap();
    let hop = report
        .forwards()
        .next()
        .expect("the problem is shown, not dropped");
    assert_eq!(hop.result, "bad-answer");
    assert!(hop
        .error
        .as_ref()
        .unwrap()
        .contains("not servicemock's shape"));
    assert!(!report.all_ok());
}
