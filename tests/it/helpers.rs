//! Every helper through the binary: one case each (rendered from a data file), plus the
//! wrong-argument error for each, plus the query-syntax forms of the Consul helpers.

use crate::support::{repo, Dir};
use consul_render::template::helpers;
use regex::Regex;

/// (helpers covered, template, expected output; `re:` = a regex to match in full).
pub(crate) const CASES: &[(&[&str], &str, &str)] = &[
    // ----- Consul -----
    (&["service"], r#"{{#each (service "web")}}{{ID}}@{{Address}} {{/each}}"#, "web-1@10.1.0.1 web-2@10.0.0.2 "),
    (&["service"], r#"{{#each (service "v1.web")}}{{ID}} {{/each}}"#, "web-1 "),
    (&["service"], r#"{{#each (service "web|any")}}{{ID}}:{{Status}} {{/each}}"#, "web-1:passing web-3:warning web-2:passing web-4:critical "),
    (&["service"], r#"{{#each (service "web" "passing,warning")}}{{ID}} {{/each}}"#, "web-1 web-3 web-2 "),
    (&["service"], r#"{{#each (service "web" tag="v1" filter="any")}}{{ID}} {{/each}}"#, "web-1 web-3 "),
    (&["service"], r#"{{#each (service "web@dc2")}}{{ID}}@{{Address}} {{/each}}"#, "web-9@10.0.9.1 "),
    (&["service"], r#"{{#each (service "nope")}}x{{else}}none{{/each}}"#, "none"),
    (
        &["service"],
        r#"{{#each (service "blue.web")}}{{Name}} {{Node}} {{NodeAddress}} {{Port}} {{join "," Tags}} {{ServiceMeta.version}} {{Meta.version}} {{NodeDatacenter}} {{Weights.Passing}} {{len Checks}}{{/each}}"#,
        "web node-b 10.0.0.2 8080 blue,v2 2 2 dc1 1 2",
    ),
    (&["services"], r#"{{#each (services)}}{{Name}}:{{join "," Tags}} {{/each}}"#, "db:primary web:blue,v1,v2 "),
    (&["services"], r#"{{#each (services "@dc2")}}{{Name}} {{/each}}"#, "web "),
    (&["nodes"], r#"{{#each (nodes)}}{{Node}}={{Address}} {{/each}}"#, "node-a=10.0.0.1 node-b=10.0.0.2 "),
    (&["nodes"], r#"{{#each (nodes "@dc2")}}{{Node}} {{/each}}"#, "node-c "),
    (&["node"], r#"{{#with (node "node-a")}}{{Node.Node}} {{Node.Meta.rack}}:{{#each Services}} {{ID}}{{/each}}{{/with}}"#, "node-a r1: db-1 web-1 web-3"),
    // An unknown node is consul-template's empty node: `with` takes it, `Node` is empty.
    (&["node"], r#"{{#with (node)}}{{Node.Node}}{{/with}}|{{#with (node "zzz")}}x{{Node.Node}}{{len Services}}{{else}}none{{/with}}"#, "node-a|x0"),
    (&["datacenters"], r#"{{join "," (datacenters)}}"#, "dc1,dc2"),
    (&["key"], r#"{{key "app/name"}} {{key "/app/name@dc1"}}"#, "shop shop"),
    (&["keyExists"], r#"{{keyExists "app/name"}} {{keyExists "nope"}}"#, "true false"),
    (&["keyOrDefault"], r#"{{keyOrDefault "app/name" "x"}} {{keyOrDefault "app/empty" "d1"}} {{keyOrDefault "nope" "d2"}}"#, "shop d1 d2"),
    (&["ls"], r#"{{#each (ls "app")}}{{Key}}={{Value}} {{/each}}"#, "empty= name=shop "),
    (&["tree"], r#"{{#each (tree "app")}}{{Key}} {{/each}}"#, "db/host db/port empty name "),
    (&["safeLs"], r#"{{#each (safeLs "app/db")}}{{Key}} {{/each}}"#, "host port "),
    (&["safeTree"], r#"{{#each (safeTree "app/db/")}}{{Key}}={{Value}} {{/each}}"#, "host=db.local port=5432 "),
    // ----- local -----
    (&["env"], r#"{{env "CR_TEST"}}|{{env "CR_UNSET"}}"#, "hello|"),
    (&["envOrDefault"], r#"{{envOrDefault "CR_EMPTY" "d"}}|{{envOrDefault "CR_UNSET" "d"}}"#, "|d"),
    (&["mustEnv"], r#"{{mustEnv "CR_TEST"}}"#, "hello"),
    (&["file"], r#"{{trimSpace (file "live.txt")}}"#, "green"),
    (&["timestamp"], r#"{{timestamp}}|{{timestamp "2006-01-02"}}|{{timestamp "unix"}}"#, r"re:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\|\d{4}-\d\d-\d\d\|\d{10}"),
    // ----- collections -----
    (&["byTag"], r#"{{#each (byTag (service "web"))}}{{@key}}:{{#each this}}{{ID}},{{/each}} {{/each}}"#, "blue:web-2, v1:web-1, v2:web-2, "),
    (&["byKey"], r#"{{#each (byKey (tree "app"))}}{{@key}}:{{#each this}}{{@key}}={{Value}},{{/each}} {{/each}}"#, "db:host=db.local,port=5432, "),
    (&["byPort"], r#"{{#each (byPort (service "web|any"))}}{{@key}}:{{len this}} {{/each}}"#, "8080:2 9090:2 "),
    (&["byMeta"], r#"{{#each (byMeta "version" (service "web"))}}{{@key}}={{len this}} {{/each}}|{{#each (byMeta "version|int,zone" (service "web"))}}{{@key}} {{/each}}"#, "1=1 2=1 |00001__no_zone_ 00002__no_zone_ "),
    (&["contains"], r#"{{contains "b" (split "," "a,b")}} {{contains "z" "xyz"}} {{contains "q" (split "," "a")}}"#, "true true false"),
    (&["in"], r#"{{in (split "," "a,b") "c"}} {{in "hello" "ell"}}"#, "false true"),
    (&["containsAll"], r#"{{containsAll (split "," "a,b") (split "," "a,b,c")}} {{containsAll (split "," "a,z") (split "," "a,b,c")}}"#, "true false"),
    (&["containsAny"], r#"{{containsAny (split "," "z,a") (split "," "a,b")}} {{containsAny (split "," "z,y") (split "," "a,b")}}"#, "true false"),
    (&["containsNone"], r#"{{containsNone (split "," "x,y") (split "," "a,b")}} {{containsNone (split "," "a") (split "," "a,b")}}"#, "true false"),
    (&["containsNotAll"], r#"{{containsNotAll (split "," "a,z") (split "," "a,b")}} {{containsNotAll (split "," "a") (split "," "a,b")}}"#, "true false"),
    (&["explode"], r#"{{toJSON (explode (tree "app"))}}"#, r#"{"db":{"host":"db.local","port":"5432"},"empty":"","name":"shop"}"#),
    (&["explodeMap"], r#"{{toJSON (explodeMap (parseJSON '{"a/b":1,"a/c":2,"d":3}'))}}"#, r#"{"a":{"b":1,"c":2},"d":3}"#),
    (&["mergeMap"], r#"{{toJSON (mergeMap (parseJSON '{"a":1,"b":2}') (parseJSON '{"b":9}'))}}"#, r#"{"a":1,"b":9}"#),
    (&["mergeMapWithOverride"], r#"{{toJSON (mergeMapWithOverride (parseJSON '{"a":1,"b":2}') (parseJSON '{"b":9,"c":3}'))}}"#, r#"{"a":1,"b":9,"c":3}"#),
    (&["loop"], r#"{{#each (loop 3)}}{{this}}{{/each}} {{#each (loop 2 5)}}{{this}}{{/each}}"#, "012 234"),
    // ----- text -----
    (&["join", "split"], r#"{{join "-" (split "," "a,b,c")}} {{len (split "," "  ")}} {{#each (split ":" " a:b ")}}[{{this}}]{{/each}}"#, "a-b-c 0 [a][b]"),
    (&["splitToMap"], r#"{{toJSON (splitToMap "," ":" "a:1,b:2,bad")}}"#, r#"{"a":"1","b":"2"}"#),
    (&["trim", "trimPrefix", "trimSuffix", "trimSpace"], r#"{{trim "-" "--x--"}} {{trimPrefix "www." "www.example.com"}} {{trimSuffix ".com" "example.com"}} [{{trimSpace "  x  "}}]"#, "x example.com example [x]"),
    (&["toLower", "toUpper", "toTitle"], r#"{{toLower "ABC"}} {{toUpper "abc"}} {{toTitle "hello wide-world"}}"#, "abc ABC Hello Wide-World"),
    (&["replaceAll"], r#"{{replaceAll "." "_" "a.b.c"}}"#, "a_b_c"),
    (&["regexMatch"], r#"{{regexMatch "^v[0-9]+$" "v12"}} {{regexMatch "^v[0-9]+$" "x"}}"#, "true false"),
    (&["regexReplaceAll"], r#"{{regexReplaceAll "([a-z]+)@([a-z]+)" "$2:$1" "user@host"}}"#, "host:user"),
    (&["indent"], r#"{{indent 2 (file "two-lines.txt")}}"#, "  a\n\n  b\n"),
    // ----- parsing and encoding -----
    (&["parseBool"], r#"{{parseBool "true"}} {{parseBool ""}}"#, "true false"),
    (&["parseInt", "parseUint", "parseFloat"], r#"{{add (parseInt "41") 1}} {{parseUint "7"}} {{parseFloat "1.5"}}"#, "42 7 1.5"),
    (&["parseJSON"], r#"{{#with (parseJSON (key "json"))}}{{a}}{{/with}}"#, "1"),
    (&["parseYAML"], r#"{{#with (parseYAML "{a: 1, b: [x, y]}")}}{{a}} {{join "," b}}{{/with}}"#, "1 x,y"),
    (&["toJSON", "toUnescapedJSON"], r#"{{toJSON (splitToMap "," ":" "k:<v>")}} {{toUnescapedJSON (splitToMap "," ":" "k:<v>")}}"#, r#"{"k":"\u003cv\u003e"} {"k":"<v>"}"#),
    (&["toJSONPretty", "toUnescapedJSONPretty"], r#"{{toJSONPretty (splitToMap "," ":" "k:&")}} {{toUnescapedJSONPretty (splitToMap "," ":" "k:&")}}"#, "{\n  \"k\": \"\\u0026\"\n} {\n  \"k\": \"&\"\n}"),
    (&["toYAML"], r#"{{toYAML (splitToMap "," ":" "k:v")}}"#, "k: v"),
    (&["toTOML"], r#"{{toTOML (splitToMap "," ":" "k:v")}}"#, "k = \"v\""),
    (&["base64Encode", "base64Decode"], r#"{{base64Encode "hello"}} {{base64Decode "aGVsbG8="}}"#, "aGVsbG8= hello"),
    (&["base64URLEncode", "base64URLDecode"], r#"{{base64URLEncode "??>"}} {{base64URLDecode "Pz8-"}}"#, "Pz8- ??>"),
    (&["sha256Hex", "md5sum"], r#"{{sha256Hex "hello"}} {{md5sum "hello"}}"#, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 5d41402abc4b2a76b9719d911017c592"),
    (&["hmacSHA256Hex"], r#"{{hmacSHA256Hex "hello" "key"}}"#, "9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"),
    // ----- math -----
    (&["add", "subtract", "multiply", "divide", "modulo"], r#"{{add 1 2}} {{subtract 10 3}} {{multiply 3 4}} {{divide 10 4}} {{divide 10.0 4}} {{modulo 10 3}} {{add 1 0.5}}"#, "3 7 12 2 2.5 1 1.5"),
    (&["minimum", "maximum"], r#"{{minimum 3 5}} {{maximum 3 5}}"#, "3 5"),
    // ----- Go's fmt -----
    (&["printf"], r#"{{printf "%s:%05d %.2f %v" "web" 80 3.14159 (split "," "a,b")}}"#, "web:00080 3.14 [a b]"),
    (&["print", "println"], r#"{{print "a" 1 2 "b"}}|{{println "x" 3}}"#, "a1 2b|x 3
"),
];

pub(crate) fn setup() -> Dir {
    let d = Dir::new();
    std::fs::copy(
        repo().join("tests/fixtures/helpers-data.json"),
        d.join("data.json"),
    )
    .unwrap();
    d.write("live.txt", "green\n");
    d.write("two-lines.txt", "a\n\nb\n");
    d
}

pub(crate) fn run_template(d: &Dir, template: &str) -> crate::support::Run {
    d.write("t.hbs", template);
    crate::support::Run::of(
        d.cmd()
            .env("CR_TEST", "hello")
            .env("CR_EMPTY", "")
            .env_remove("CR_UNSET")
            .args(["-data", "data.json", "-template", "t.hbs", "-dry", "-once"]),
    )
}

/// One template holding every case, each introduced by a marker line.
pub(crate) fn all_cases_template() -> String {
    let mut template = String::new();
    for (i, (_, case, _)) in CASES.iter().enumerate() {
        template.push_str(&format!("@@CASE {i}@@{case}\n"));
    }
    template
}

/// Splits the output of `all_cases_template` back into one string per case.
pub(crate) fn split_cases(stdout: &str) -> Vec<String> {
    stdout
        .split("@@CASE ")
        .skip(1)
        .map(|part| {
            let (_, got) = part.split_once("@@").unwrap_or(("", part));
            got.strip_suffix('\n').unwrap_or(got).to_string()
        })
        .collect()
}

#[test]
fn every_helper_renders_its_case() {
    let d = setup();
    let run = run_template(&d, &all_cases_template());
    run.code(0);
    let parts = split_cases(&run.stdout);
    assert_eq!(parts.len(), CASES.len(), "{}", run.stdout);
    let mut failures = Vec::new();
    for (i, got) in parts.iter().enumerate() {
        let got = got.as_str();
        let (names, template, want) = CASES[i];
        let ok = match want.strip_prefix("re:") {
            Some(re) => Regex::new(&format!("^{re}$")).unwrap().is_match(got),
            None => got == want,
        };
        if !ok {
            failures.push(format!(
                "{names:?} {template}\n   want {want:?}\n    got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_helper_has_a_case() {
    let covered: Vec<&str> = CASES
        .iter()
        .flat_map(|(names, _, _)| names.iter().copied())
        .collect();
    let missing: Vec<&str> = helpers::all()
        .map(|s| s.name)
        .filter(|n| !covered.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "helpers without a test case: {missing:?}"
    );
}

#[test]
fn wrong_argument_counts_name_the_helper_and_position() {
    let d = setup();
    // (print, printf and println take any number.)
    for spec in helpers::all().filter(|s| s.max != helpers::MANY) {
        let args = vec!["\"x\""; spec.max.min(5) + 1].join(" ");
        let run = run_template(&d, &format!("line one\n  {{{{{} {args}}}}}\n", spec.name));
        run.code(14)
            .stderr_has(&format!(
                "t.hbs:2:3: {}: wrong number of arguments",
                spec.name
            ))
            .stderr_has("    ^");
    }
}

#[test]
fn wrong_argument_types_and_values_are_render_errors() {
    let d = setup();
    for (template, message) in [
        (r#"{{add 1 "x"}}"#, "add: argument 2 must be a number"),
        (r#"{{divide 1 0}}"#, "divide: division by zero"),
        (
            r#"{{join "," "notalist"}}"#,
            "join: argument 2 must be a list",
        ),
        (
            r#"{{indent -1 "x"}}"#,
            "indent: indent value must be a positive integer",
        ),
        (r#"{{parseInt "x1"}}"#, "parseInt: \"x1\" is not an integer"),
        (
            r#"{{regexMatch "(" "x"}}"#,
            "regexMatch: invalid regular expression",
        ),
        (
            r#"{{mustEnv "CR_UNSET"}}"#,
            "required environment variable CR_UNSET is empty",
        ),
        (
            r#"{{service "web|bogus"}}"#,
            "unknown health filter \"bogus\"",
        ),
        (r#"{{service "we b"}}"#, "invalid service query \"we b\""),
        (
            r#"{{service "web?color=red"}}"#,
            "unsupported query parameter \"color\"",
        ),
        (
            r#"{{#each (byMeta "version|float" (service "web"))}}{{/each}}"#,
            "unknown conversion |float",
        ),
    ] {
        let run = run_template(&d, template);
        run.code(14).stderr_has(message).stderr_has("t.hbs:1:");
    }
    // Helpers we do not have are load errors (exit 15), found before anything renders.
    for (template, message) in [
        (
            r#"{{secret "kv/x"}}"#,
            "secret: Vault functions are not supported yet",
        ),
        (
            r#"{{servce "web"}}"#,
            "unknown helper \"servce\" (did you mean \"service\"?)",
        ),
    ] {
        run_template(&d, template)
            .code(15)
            .stderr_has(message)
            .stderr_has("t.hbs:1:");
    }
    // A fetch error belongs to the query (shared by every template using it), not a position.
    run_template(&d, r#"{{service "web@dc9"}}"#)
        .code(14)
        .stderr_has("health.service(web@dc9|passing): No path to datacenter \"dc9\"");
}

#[test]
fn things_that_never_arrive_fail_once_mode_naming_them() {
    let d = setup();
    run_template(&d, r#"{{key "no/such/key"}}"#)
        .code(14)
        .stderr_has("key \"no/such/key\" does not exist")
        .stderr_has("keyOrDefault");
    run_template(&d, r#"{{file "no-such-file"}}"#)
        .code(14)
        .stderr_has("file no-such-file does not exist");
    run_template(&d, r#"{{#each (safeLs "nothing/here")}}{{/each}}"#)
        .code(14)
        .stderr_has("kv.list(nothing/here) is empty");
}
