//! README's and docs/'s shown outputs come from the product: every block
//! marked `<!-- checked by tests/readme.rs -->` in README.md or a page of
//! docs/ is its `$ curl …` command run with
//! curl against the demo mesh, and must match line by line once what varies
//! from run to run (timings, ids, dates, ports, the host name, the
//! resolver's own words) is set aside; the slowest-path marks are compared
//! as shown (the examples' delays decide them). A block marked with
//! `: PATH` is a JSON report compared field by field, its keys in order; one
//! marked `in: NAME=PLAN NAME …` runs in a mesh of those members (as
//! `servicemock mesh` takes them) instead of the demo mesh.

mod common;

use std::process::Command;

use common::*;
use regex::Regex;
use serde_json::Value;

const MARK: &str = "<!-- checked by tests/readme.rs";

/// A checked block: the path it shows, whether it is JSON, its lines, and
/// the mesh it runs in when not the demo mesh.
struct Block {
    path: String,
    json: bool,
    shown: String,
    mesh: Option<Vec<String>>,
}

/// README and every page of docs/, each with its name.
fn pages() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![(
        "README.md".to_owned(),
        std::fs::read_to_string(root.join("README.md")).unwrap(),
    )];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    for path in docs {
        let name = format!("docs/{}", path.file_name().unwrap().to_string_lossy());
        pages.push((name, std::fs::read_to_string(path).unwrap()));
    }
    pages
}

/// A page of docs/ by its file name.
fn doc(name: &str) -> String {
    std::fs::read_to_string(format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Each checked block of one page.
fn checked_blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix(MARK) else {
            continue;
        };
        let rest = rest.trim_end_matches("-->").trim();
        let mesh = rest
            .strip_prefix("in:")
            .map(|members| members.split_whitespace().map(str::to_owned).collect());
        let json_path = rest.strip_prefix(':').map(str::trim);
        assert!(
            lines[i + 1].starts_with("```"),
            "a fenced block follows the mark at line {}",
            i + 1
        );
        let body: Vec<&str> = lines[i + 2..]
            .iter()
            .take_while(|l| !l.starts_with("```"))
            .copied()
            .collect();
        let (path, shown) = match json_path {
            Some(path) => (path.to_owned(), body.join("\n")),
            None => {
                let command = body[0]
                    .strip_prefix("$ ")
                    .expect("the block starts with its command");
                let quoted = command.split('\'').nth(1).expect("the URL is quoted");
                let path = quoted.trim_start_matches("localhost:8080").to_owned();
                (path, body[1..].join("\n"))
            }
        };
        out.push(Block {
            path,
            json: json_path.is_some(),
            shown,
            mesh,
        });
    }
    out
}

/// The names `cargo run --release -- mesh …` in README starts.
const DEMO_MESH: &[&str] = &["service1", "service2", "service3", "service4"];

/// The keys of a JSON text in the order a reader sees them.
fn keys_in_order(json: &str) -> Vec<String> {
    Regex::new(r#""(\w+)":"#)
        .unwrap()
        .captures_iter(json)
        .map(|c| c[1].to_owned())
        .collect()
}

/// What varies from run to run, set aside.
fn normalize(text: &str) -> String {
    let rules = [
        (r"\d+\.\d+ ms", "N ms"),
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "ID",
        ),
        (r"(after|allowed) \d+(\.\d+)?(ms|s)", "$1 T"),
        (r"(localhost|127\.0\.0\.1):\d+", "ADDR"),
        // The system's words for a name that does not resolve, and where the
        // tree wrapped them (its continuation lines), up to the mesh's hint.
        (
            r"failed to lookup address information: [^(]*\(",
            "failed to lookup address information: … (",
        ),
        (r"x-servicemock-call: \d+", "x-servicemock-call: N"),
    ];
    let mut text = text.to_owned();
    for (pattern, with) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, with)
            .into_owned();
    }
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A JSON report with what varies set aside: numbers, dates, the host, the
/// client's own headers.
fn normalize_json(value: &Value) -> Value {
    match value {
        Value::Number(_) => Value::from(0),
        Value::String(s) => {
            let date = Regex::new(r"^\d{4}-\d\d-\d\dT[\d:.]+Z$").unwrap();
            Value::from(if date.is_match(s) {
                "DATE".to_owned()
            } else {
                normalize(s)
            })
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|i| !i.as_str().is_some_and(|s| s.starts_with("user-agent:")))
                .map(normalize_json)
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if k == "Host" {
                        Value::from("HOST")
                    } else {
                        normalize_json(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn every_shown_output_is_what_the_product_prints() {
    let curl = tool("curl");
    let pages = pages();
    let blocks: Vec<Block> = pages
        .iter()
        .flat_map(|(_, text)| checked_blocks(text))
        .collect();
    assert!(blocks.len() >= 6, "{} checked blocks", blocks.len());
    for page in ["README.md", "docs/any-client.md"] {
        let (_, text) = pages.iter().find(|(name, _)| name == page).unwrap();
        assert!(
            !checked_blocks(text).is_empty(),
            "{page} has checked blocks"
        );
    }
    let demo = mesh(DEMO_MESH).await;
    for Block {
        path,
        json,
        shown,
        mesh: members,
    } in blocks
    {
        let own = match &members {
            None => None,
            Some(members) => Some(members_mesh(members).await),
        };
        let entry = match &own {
            None => demo.members[0].1,
            Some(own) => own.members[0].1,
        };
        let url = format!("http://localhost:{}{path}", entry.port());
        let curl = curl.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(curl)
                .args(["-s", "-g", &url])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let actual = String::from_utf8_lossy(&out.stdout).into_owned();
        if json {
            assert_eq!(keys_in_order(&actual), keys_in_order(&shown), "{path}");
            let shown: Value = serde_json::from_str(&shown).unwrap();
            let actual: Value = serde_json::from_str(&actual).unwrap();
            assert_eq!(normalize_json(&actual), normalize_json(&shown), "{path}");
        } else {
            assert_eq!(
                normalize(actual.trim_end()),
                normalize(shown.trim_end()),
                "{path}"
            );
        }
        if let Some(own) = own {
            own.stop().await.unwrap();
        }
    }
}

/// A mesh of `NAME` and `NAME=PLAN` members, as `servicemock mesh` reads them.
async fn members_mesh(members: &[String]) -> servicemock::mesh::Mesh {
    let members: Vec<servicemock::mesh::Member> = members
        .iter()
        .map(|arg| servicemock::mesh::Member::from_arg(arg, &Default::default()).unwrap())
        .collect();
    servicemock::mesh::Mesh::start_members(&members, options(Default::default()))
        .await
        .unwrap()
}

/// Every row of README's URL table, run against the demo mesh README
/// starts: each answers 200 with every hop ok, except the one README says
/// needs a cluster, which answers with the hop that says why.
#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn every_url_of_the_table_answers_in_the_demo_mesh() {
    let curl = tool("curl");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&format!(
            "cargo run --release -- mesh {}",
            DEMO_MESH.join(" ")
        )),
        "README starts the mesh this test starts"
    );
    let table = readme
        .split("| URL | effect |")
        .nth(1)
        .expect("the URL table");
    let rows: Vec<(String, bool)> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let path = row.split('`').nth(1).unwrap().replace("\\|", "|");
            (path, row.contains("in a cluster only"))
        })
        .collect();
    assert_eq!(rows.len(), 10, "{rows:?}");
    let mesh = mesh(DEMO_MESH).await;
    let entry = mesh.at("service1");
    for (path, cluster_only) in rows {
        let url = format!("http://localhost:{}{path}", entry.port());
        let curl = curl.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(curl)
                .args(["-s", "-g", "-w", "\n%{http_code}", &url])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        if cluster_only {
            assert_eq!(code, "502", "{path}: {body}");
            assert!(
                body.contains("is a service of this mesh and listens on port 8080"),
                "{path}: {body}"
            );
        } else {
            assert_eq!(code, "200", "{path}: {body}");
            let report: Value = serde_json::from_str(body).unwrap();
            assert!(
                !body.contains("\"Error\""),
                "{path}: every hop ok: {report:#}"
            );
        }
    }
}

/// README and the header of scripts/test name the same packages: every
/// Debian package the script installs and every Python requirement.
#[test]
fn readme_and_the_test_script_name_the_packages_it_installs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |path: &str| std::fs::read_to_string(format!("{root}/{path}")).unwrap();
    let (readme, script) = (read("README.md"), read("scripts/test"));
    let header: String = script
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let debian: Vec<&str> = script
        .lines()
        .filter_map(|l| l.split("apt_packages+=(").nth(1))
        .flat_map(|l| l.trim_end_matches(')').split(' '))
        .collect();
    assert!(debian.len() >= 9, "{debian:?}");
    let requirements = read("tests/python/requirements.txt");
    let python: Vec<&str> = requirements
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['=', '>', '<']).next().unwrap().trim())
        .collect();
    let said = |text: &str, name: &str| {
        let words: Vec<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
            .collect();
        words.contains(&name)
    };
    for name in debian.iter().chain(&python) {
        assert!(said(&readme, name), "README does not name {name}");
        assert!(
            said(&header, name),
            "scripts/test's header does not name {name}"
        );
    }
}

/// Debian's jq 1.6 gives up on JSON nested past 256 levels: a 32-deep report
/// (the deepest that answers 200) is past it as a tree, and well within it
/// as the flat view.
#[ignore = "needs jq: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn jq_reads_the_flat_view_of_the_deepest_report() {
    let jq = tool("jq");
    let mesh = mesh(&["s"]).await;
    let s = mesh.at("s");
    let path = format!("{}/end?view=flat", "/@s".repeat(32));
    let (status, flat) = get(s, &path).await;
    assert_eq!(status, 200, "{flat}");
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(jq)
            .args(["-r", ".[] | .Position"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), flat.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let positions: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(positions.len(), 33, "the entry and 32 hops");
    assert_eq!(positions[32], format!("1{}", ".1".repeat(32)));
}

/// The topology file docs/any-client.md shows is one the product reads:
/// every service, version and behaviour as described.
#[test]
fn the_topology_shown_is_read_as_described() {
    let page = doc("any-client.md");
    let (_, after) = page
        .split_once("```yaml\nservices:")
        .expect("docs/any-client.md shows a topology");
    let text = format!("services:{}", after.split_once("```").unwrap().0);
    let topology =
        servicemock::topology::Topology::parse("docs/any-client.md", &text, &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = topology.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["productpage", "details", "reviews", "ratings"]);
    let reviews = &topology.services[2];
    assert_eq!(reviews.versions.len(), 3);
    assert_eq!(reviews.versions[1].replicas, 2);
    assert_eq!(topology.external, ["httpbin.org"]);
    assert!(topology.services[3].tls);
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped,
/// spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings (outside fenced blocks).
fn anchors(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// README was split into docs/: every relative link of README and docs/
/// still reaches a file, and every `#anchor` a heading of its page.
#[test]
fn every_link_between_the_pages_reaches_its_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut broken = Vec::new();
    let mut checked = 0;
    for (page, text) in pages() {
        let dir = root.join(&page).parent().unwrap().to_owned();
        for found in link.captures_iter(&text) {
            let target = &found[1];
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            checked += 1;
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target, None),
            };
            let path = if file.is_empty() {
                root.join(&page)
            } else {
                dir.join(file)
            };
            if !path.exists() {
                broken.push(format!("{page}: {target} (no such file)"));
                continue;
            }
            if let Some(fragment) = fragment {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if !anchors(&text).iter().any(|a| a == fragment) {
                    broken.push(format!("{page}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(checked > 30, "{checked} links checked");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert_eq!(
        anchor(" When things fail: what the report promises"),
        "when-things-fail-what-the-report-promises"
    );
}
