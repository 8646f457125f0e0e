//! consul-template's own test cases, ported: each case's data and expected result are the facts
//! of consul-template's test (`template/template_test.go` `TestTemplate_Execute`,
//! `template/funcs_test.go`, `manager/runner_test.go` `TestRunner_Run` and `TestRunner_command`), the
//! template is its handlebars equivalent, and it runs through the built binary (`-once -dry`
//! from a data file, or with a command). Go prints lists as `[a b]` and maps as `map[k:v]`;
//! where a case prints one, the port prints the same items with `join` or `toJSON`.
//!
//! Not ported, and why:
//!
//! | consul-template case | why |
//! |---|---|
//! | `func_secret_*`, `func_secrets*`, `func_pkiCert*` (16) | Vault functions are not provided |
//! | `func_nomadVar*` (8) | Nomad functions are not provided |
//! | `leaf_cert*`, `root_ca`, `func_connect`, `func_peerings` (5) | Connect, CA and peering functions are not provided |
//! | `scratch.*` (5) | `scratch` is not provided (block parameters and partials instead) |
//! | `helper_plugin`, `helper_sockaddr`, `spew_sdump_*` (4) | not provided (their "disabled" error cases are ported) |
//! | `helper_timestamp`, `helper_helper_timestamp__formatted` | the clock cannot be fixed from outside; helpers.rs checks the formats |
//! | `func_node_nil_pointer_evaluation`, `helper_loop_var` | Go template variables (`$v := …`) have no handlebars form; the values they print are covered by `func_node`, `helper_loop__i` |
//! | `external_func` | Go's API for adding functions |
//! | TestFileSandbox `trailing_space_*`, `leading_space_*` | paths are trimmed before use here (a deliberate difference) |
//! | `byPort` CatalogService/NomadService, `unsupported type` | one instance shape here; `byPort` of a non-instance list is an error |
//! | TestRunner_Start, TestRunner_quiescence, TestRunner_command's `parsed` half | covered by watch.rs, exec.rs and the command's own tests; only the observable output is ported |

use crate::support::{Dir, Run};

/// One case: a handlebars template, the data file, the environment, and what it must print
/// (`Ok`) or the exit code it must fail with (`Err`).
pub(crate) struct Case {
    pub(crate) name: &'static str,
    template: &'static str,
    data: &'static str,
    env: &'static [(&'static str, &'static str)],
    want: Result<&'static str, i32>,
}

const fn case(name: &'static str, template: &'static str, want: &'static str) -> Case {
    Case {
        name,
        template,
        data: EMPTY,
        env: &[],
        want: Ok(want),
    }
}

const fn fails(name: &'static str, template: &'static str, code: i32) -> Case {
    Case {
        name,
        template,
        data: EMPTY,
        env: &[],
        want: Err(code),
    }
}

const fn with(mut c: Case, data: &'static str) -> Case {
    c.data = data;
    c
}

const fn env(mut c: Case, env: &'static [(&'static str, &'static str)]) -> Case {
    c.env = env;
    c
}

const EMPTY: &str = "{}";

/// `webapp` on node1 (1.2.3.4) and node2 (5.6.7.8), with the tags of each case.
macro_rules! webapp {
    ($t1:expr, $t2:expr) => {
        concat!(
            r#"{"nodes": [{"Node": "node1", "Address": "1.2.3.4"}, {"Node": "node2", "Address": "5.6.7.8"}],
               "services": [{"Node": "node1", "ID": "a", "Service": "webapp", "Tags": "#,
            $t1,
            r#"}, {"Node": "node2", "ID": "b", "Service": "webapp", "Tags": "#,
            $t2,
            r#"}]}"#
        )
    };
}

const LIST: &str = r#"{"kv": {"list/foo/bar": "a", "list/zip/zap": "b"}}"#;

pub(crate) const CASES: &[Case] = &[
    // ----- TestTemplate_Execute -----
    case("nil", "test", "test"),
    // Go fails at parse on an undefined function; a bare name is a value here, so the port calls it.
    fails("bad_func", "{{bad_func 1}}", 15),
    // err_missing_keys__true needs error_on_missing_key: strict_missing_key_and_missing_deps.
    // Go prints "<no value>" for a missing top-level field; consul-render prints nothing.
    case("err_missing_keys__false", "{{Data.Foo}}", ""),
    case("func_base64Decode", r#"{{base64Decode "aGVsbG8="}}"#, "hello"),
    fails("func_base64Decode_bad", r#"{{base64Decode "aGVsxxbG8="}}"#, 14),
    case("func_base64Encode", r#"{{base64Encode "hello"}}"#, "aGVsbG8="),
    case("func_base64URLDecode", r#"{{base64URLDecode "dGVzdGluZzEyMw=="}}"#, "testing123"),
    fails("func_base64URLDecode_bad", r#"{{base64URLDecode "aGVsxxbG8="}}"#, 14),
    case("func_base64URLEncode", r#"{{base64URLEncode "testing123"}}"#, "dGVzdGluZzEyMw=="),
    case(
        "func_hmacSHA256Hex",
        r#"{{hmacSHA256Hex "somemessage" "somekey"}}"#,
        "6116e95f2827172aa6ef8b22b883f6a77e966aefc129c6b8228ebd0aac74e98d",
    ),
    with(
        case("func_datacenters", r#"{{join " " (datacenters)}}"#, "dc1 dc2"),
        r#"{"nodes": [{"Node": "a", "Address": "1.1.1.1", "Datacenter": "dc1"}, {"Node": "b", "Address": "1.1.1.2", "Datacenter": "dc2"}]}"#,
    ),
    with(
        case("func_datacenters_ignore", r#"{{join " " (datacenters true)}}"#, "dc1 dc2"),
        r#"{"nodes": [{"Node": "a", "Address": "1.1.1.1", "Datacenter": "dc1"}, {"Node": "b", "Address": "1.1.1.2", "Datacenter": "dc2"}]}"#,
    ),
    env(
        case(
            "func_envOrDefault",
            r#"{{envOrDefault "SET_VAR" "100"}} {{envOrDefault "EMPTY_VAR" "200"}} {{envOrDefault "UNSET_VAR" "300"}}"#,
            "400  300",
        ),
        &[("SET_VAR", "400"), ("EMPTY_VAR", "")],
    ),
    case("func_file", r#"{{file "content.txt"}}"#, "content"),
    with(case("func_key", r#"{{key "key"}}"#, "5"), r#"{"kv": {"key": "5"}}"#),
    with(
        case("func_keyExists", r#"{{keyExists "key"}} {{keyExists "no_key"}}"#, "true false"),
        r#"{"kv": {"key": "5"}}"#,
    ),
    with(
        case("func_keyOrDefault", r#"{{keyOrDefault "key" "100"}} {{keyOrDefault "no_key" "200"}}"#, "150 200"),
        r#"{"kv": {"key": "150"}}"#,
    ),
    with(
        case("func_ls", r#"{{#each (ls "list")}}{{Key}}={{Value}}{{/each}}"#, "foo=bar"),
        r#"{"kv": {"list/foo": "bar", "list/foo/zip": "zap"}}"#,
    ),
    with(
        case("func_node", "{{#with (node)}}{{Node.Node}}{{#each Services}}{{Service}}{{/each}}{{/with}}", "node1service1"),
        r#"{"nodes": [{"Node": "node1", "Address": "1.1.1.1"}], "services": [{"Node": "node1", "ID": "s1", "Service": "service1"}]}"#,
    ),
    with(
        case("func_nodes", "{{#each (nodes)}}{{Node}}{{/each}}", "node1node2"),
        r#"{"nodes": [{"Node": "node1", "Address": "1.1.1.1"}, {"Node": "node2", "Address": "1.1.1.2"}]}"#,
    ),
    with(
        case("func_service", r#"{{#each (service "webapp")}}{{Address}}{{/each}}"#, "1.2.3.45.6.7.8"),
        webapp!("[]", "[]"),
    ),
    with(
        case("func_service_filter", r#"{{#each (service "webapp" "passing,any")}}{{Address}}{{/each}}"#, "1.2.3.45.6.7.8"),
        webapp!("[]", "[]"),
    ),
    with(
        case("func_services", "{{#each (services)}}{{Name}}{{/each}}", "service1service2"),
        r#"{"nodes": [{"Node": "n", "Address": "1.1.1.1"}], "services": [{"Node": "n", "ID": "1", "Service": "service1"}, {"Node": "n", "ID": "2", "Service": "service2"}]}"#,
    ),
    with(
        case("func_tree", r#"{{#each (tree "key")}}{{Key}}={{Value}}{{/each}}"#, "admin/port=1134maxconns=5minconns=2"),
        r#"{"kv": {"key/admin/port": "1134", "key/maxconns": "5", "key/minconns": "2"}}"#,
    ),
    with(
        case(
            "helper_by_key",
            r#"{{#each (byKey (tree "list"))}}{{@key}}:{{#each this}}{{Key}}={{Value}}{{/each}}{{/each}}"#,
            "foo:bar=azip:zap=b",
        ),
        LIST,
    ),
    with(
        case(
            "helper_by_tag",
            r#"{{#each (byTag (service "webapp"))}}{{@key}}:{{#each this}}{{Address}}{{/each}}{{/each}}"#,
            "prod:1.2.3.4staging:1.2.3.45.6.7.8",
        ),
        webapp!(r#"["prod", "staging"]"#, r#"["staging"]"#),
    ),
    with(
        case(
            "helper_contains",
            r#"{{#each (service "webapp")}}{{#if (contains "prod" Tags)}}{{Address}}{{/if}}{{/each}}"#,
            "1.2.3.4",
        ),
        webapp!(r#"["prod", "staging"]"#, r#"["staging"]"#),
    ),
    with(
        case(
            "helper_containsAll",
            r#"{{#each (service "webapp")}}{{#if (containsAll (parseJSON "[\"prod\",\"us-realm\"]") Tags)}}{{Address}}{{/if}}{{/each}}"#,
            "1.2.3.4",
        ),
        webapp!(r#"["prod", "us-realm"]"#, r#"["prod", "ca-realm"]"#),
    ),
    with(
        case(
            "helper_containsAll__empty",
            r#"{{#each (service "webapp")}}{{#if (containsAll (parseJSON "[]") Tags)}}{{Address}}{{/if}}{{/each}}"#,
            "1.2.3.45.6.7.8",
        ),
        webapp!(r#"["prod", "us-realm"]"#, r#"["prod", "ca-realm"]"#),
    ),
    with(
        case(
            "helper_containsAny",
            r#"{{#each (service "webapp")}}{{#if (containsAny (parseJSON "[\"v2\",\"v3\"]") Tags)}}{{Address}}{{/if}}{{/each}}"#,
            "5.6.7.8",
        ),
        webapp!(r#"["prod", "v1"]"#, r#"["prod", "v2"]"#),
    ),
    with(
        case(
            "helper_containsAny__empty",
            r#"{{#each (service "webapp")}}{{#if (containsAny (parseJSON "[]") Tags)}}{{Address}}{{/if}}{{/each}}"#,
            "",
        ),
        webapp!(r#"["prod", "v1"]"#, r#"["prod", "v2"]"#),
    ),
    with(
        case(
            "helper_containsNone",
            r#"{{#each (service "webapp")}}{{#if (containsNone (parseJSON "[\"devel\",\"staging\"]") Tags)}}{{Address}}{{/if}}{{/each}}"#,
            "1.2.3.4",
        ),
        webapp!(r#"["prod", "v1"]"#, r#"["devel", "v2"]"#),
    ),
    with(
        case(
            "helper_containsNone__empty",
            r#"{{#each (service "webapp")}}{{#if (containsNone (parseJSON "[]") Tags)}}{{Address}}{{/if}}{{/each}}"#,
            "1.2.3.45.6.7.8",
        ),
        webapp!(r#"["staging", "v1"]"#, r#"["devel", "v2"]"#),
    ),
    with(
        case(
            "helper_containsNotAll",
            r#"{{#each (service "webapp")}}{{#if (containsNotAll (parseJSON "[\"es-v1\",\"es-v2\"]") Tags)}}{{Address}}{{/if}}{{/each}}"#,
            "1.2.3.4",
        ),
        webapp!(r#"["prod", "es-v1"]"#, r#"["prod", "hybrid", "es-v1", "es-v2"]"#),
    ),
    with(
        case(
            "helper_containsNotAll__empty",
            r#"{{#each (service "webapp")}}{{#if (containsNotAll (parseJSON "[]") Tags)}}{{Address}}{{/if}}{{/each}}"#,
            "",
        ),
        webapp!(r#"["prod", "es-v1"]"#, r#"["prod", "hybrid", "es-v1", "es-v2"]"#),
    ),
    env(case("helper_env", r#"{{env "CT_TEST"}}"#, "1"), &[("CT_TEST", "1")]),
    env(case("helper_mustEnv", r#"{{mustEnv "CT_TEST"}}"#, "1"), &[("CT_TEST", "1")]),
    fails("helper_mustEnv_negative", r#"{{mustEnv "CT_TEST_NONEXISTENT"}}"#, 14),
    env(case("helper_env__override", r#"{{env "CT_TEST"}}"#, "2"), &[("CT_TEST", "2")]),
    // executeTemplate is an inline partial here.
    with(
        case("helper_executeTemplate", r#"{{#*inline "custom"}}{{key "foo"}}{{/inline}}{{> custom}}"#, "bar"),
        r#"{"kv": {"foo": "bar"}}"#,
    ),
    with(
        case("helper_executeTemplate__dot", r#"{{#*inline "custom"}}{{key this}}{{/inline}}{{> custom "foo"}}"#, "bar"),
        r#"{"kv": {"foo": "bar"}}"#,
    ),
    with(
        case(
            "helper_mergeMap",
            r#"{{#each (mergeMap (parseJSON "{\"voo\":{\"bar\":\"v\"}}") (explode (tree "list")))}}{{@key}}{{toJSON this}}{{/each}}"#,
            r#"foo{"bar":"a"}voo{"bar":"v"}zip{"zap":"b"}"#,
        ),
        LIST,
    ),
    with(
        case(
            "helper_mergeMapWithOverride",
            r#"{{#each (mergeMapWithOverride (parseJSON "{\"zip\":{\"zap\":\"t\"},\"voo\":{\"bar\":\"v\"}}") (explode (tree "list")))}}{{@key}}{{toJSON this}}{{/each}}"#,
            r#"foo{"bar":"a"}voo{"bar":"v"}zip{"zap":"b"}"#,
        ),
        LIST,
    ),
    with(
        case(
            "helper_explode",
            r#"{{#each (explode (tree "list"))}}{{@key}}{{toJSON this}}{{/each}}"#,
            r#"foo{"bar":"a"}zip{"zap":"b"}"#,
        ),
        LIST,
    ),
    case(
        "helper_explodemap",
        r#"{{toJSON (explodeMap (parseJSON "{\"foo/bar\":\"a\",\"qux\":\"c\",\"zip/zap\":\"d\"}"))}}"#,
        r#"{"foo":{"bar":"a"},"qux":"c","zip":{"zap":"d"}}"#,
    ),
    with(
        case(
            "helper_in",
            r#"{{#each (service "webapp")}}{{#if (in Tags "prod")}}{{Address}}{{/if}}{{/each}}"#,
            "1.2.3.4",
        ),
        webapp!(r#"["prod", "staging"]"#, r#"["staging"]"#),
    ),
    case(
        "helper_indent",
        r#"{{indent 4 "hello\nhello\r\nHELLO\r\nhello\nHELLO"}}"#,
        "    hello\n    hello\r\n    HELLO\r\n    hello\n    HELLO",
    ),
    fails("helper_indent_negative", r#"{{indent -4 "hello\nhello"}}"#, 14),
    case(
        "helper_indent_zero",
        r#"{{indent 0 "hello\nhello\r\nHELLO\r\nhello\nHELLO"}}"#,
        "hello\nhello\r\nHELLO\r\nhello\nHELLO",
    ),
    case("helper_loop", "{{#each (loop 3)}}1{{/each}}", "111"),
    case("helper_loop__i", "{{#each (loop 3)}}{{this}}{{/each}}", "012"),
    case("helper_loop_start", "{{#each (loop 1 3)}}1{{/each}}", "11"),
    case("helper_loop_text", r#"{{#each (loop 1 "3")}}1{{/each}}"#, "11"),
    case("helper_loop_parseInt", r#"{{#each (loop 1 (parseInt "3"))}}1{{/each}}"#, "11"),
    case("helper_join", r#"{{join ";" (split "," "a,b,c")}}"#, "a;b;c"),
    case("helper_trim", r#"{{trim "!!" "!!hello world!!"}}"#, "hello world"),
    case("helper_trimPrefix", r#"{{trimPrefix "hello " "hello world!!"}}"#, "world!!"),
    case("helper_trimSuffix", r#"{{trimSuffix " world!!" "hello world!!"}}"#, "hello"),
    case("helper_parseBool", r#"{{parseBool "true"}}"#, "true"),
    case("helper_parseFloat", r#"{{parseFloat "1.2"}}"#, "1.2"),
    case("helper_parseFloat_format", r#"{{printf "%.1f" (parseFloat "1.0")}}"#, "1.0"),
    case("helper_parseInt", r#"{{parseInt "-1"}}"#, "-1"),
    case("helper_parseJSON", r#"{{toJSON (parseJSON "{\"foo\": \"bar\"}")}}"#, r#"{"foo":"bar"}"#),
    case("helper_parseUint", r#"{{parseUint "1"}}"#, "1"),
    case("helper_parseYAML", r#"{{toJSON (parseYAML "foo: bar")}}"#, r#"{"foo":"bar"}"#),
    case(
        "helper_parseYAMLv2",
        r#"{{toJSON (parseYAML "foo: bar\nbaz: \"foo\"")}}"#,
        r#"{"baz":"foo","foo":"bar"}"#,
    ),
    case(
        "helper_parseYAMLnested",
        r#"{{toJSON (parseYAML "foo:\n  bar: \"baz\"\n  baz: 7")}}"#,
        r#"{"foo":{"bar":"baz","baz":7}}"#,
    ),
    fails("helper_plugin_disabled", r#"{{plugin "echo" "1"}}"#, 15),
    fails("sprig_reverse_disabled", r#"{{sprig_reverse "abcde"}}"#, 15),
    case("helper_regexMatch", r#"{{regexMatch "[a-z]+" "foo"}}"#, "true"),
    case("helper_regexReplaceAll", r#"{{regexReplaceAll "\\w" "x" "foo"}}"#, "xxx"),
    case("helper_replaceAll", r#"{{regexReplaceAll "hello" "bye" "hello my hello"}}"#, "bye my bye"),
    case("helper_split", r#"{{join " " (split "," "a,b,c")}}"#, "a b c"),
    case(
        "helper_splitToMap",
        r#"{{toJSON (splitToMap "," ":" "a:x,b:y,c:z")}}"#,
        r#"{"a":"x","b":"y","c":"z"}"#,
    ),
    case("helper_toJSON", r#"{{toJSON (split "," "a,b,c")}}"#, r#"["a","b","c"]"#),
    case(
        "helper_toUnescapedJSON",
        r#"{{toUnescapedJSON (split "," "a?b&c,x?y&z")}}"#,
        r#"["a?b&c","x?y&z"]"#,
    ),
    with(
        case(
            "helper_toUnescapedJSONPretty",
            r#"{{toUnescapedJSONPretty (explode (tree "key"))}}"#,
            "{\n  \"a\": \"b&c\",\n  \"k\": \"<>&&\",\n  \"x\": \"y&z\"\n}",
        ),
        r#"{"kv": {"key/a": "b&c", "key/x": "y&z", "key/k": "<>&&"}}"#,
    ),
    case("helper_toLower", r#"{{toLower "HI"}}"#, "hi"),
    case("helper_toTitle", r#"{{toTitle "this is a sentence"}}"#, "This Is A Sentence"),
    case(
        "helper_toTitle_unicode",
        "{{toTitle \"this is a sentence\u{2026}and another sentence\u{2026}with a \u{1F680}rocket\"}}",
        "This Is A Sentence\u{2026}And Another Sentence\u{2026}With A \u{1F680}Rocket",
    ),
    case("helper_toTOML", r#"{{toTOML (parseJSON "{\"foo\":\"bar\"}")}}"#, r#"foo = "bar""#),
    case("helper_toUpper", r#"{{toUpper "hi"}}"#, "HI"),
    case("helper_toYAML", r#"{{toYAML (parseJSON "{\"foo\":\"bar\"}")}}"#, "foo: bar"),
    case("helper_trimSpace", "{{trimSpace \"\\t hi\\n \"}}", "hi"),
    // Go pipes put the piped value last: `2 | subtract 2` is 2 − 2, `3 | modulo 2` is 3 % 2.
    case("math_add", "{{add 2 2}}", "4"),
    case("math_subtract", "{{subtract 2 2}}", "0"),
    case("math_multiply", "{{multiply 2 2}}", "4"),
    case("math_divide", "{{divide 2 2}}", "1"),
    case("math_modulo", "{{modulo 3 2}}", "1"),
    case("math_minimum", "{{minimum 3 2}}", "2"),
    case("math_maximum", "{{maximum 3 2}}", "3"),
    // ----- template/funcs_test.go -----
    case("Test_sha256Hex", r#"{{sha256Hex "bladibla"}}"#, "54cf4c66bcabb5c20e25331c01dd600b73369e97a947861bd8d3a0e0b8b3d70b"),
    case("Test_md5sum", r#"{{md5sum "bladibla"}}"#, "c6886abd136f7daece35aebb01f1b713"),
    case(
        "Test_hmacSHA256Hex",
        r#"{{hmacSHA256Hex "bladibla" "foobar"}}"#,
        "82cd4c36fa45a1936e93d005ea2fd008350339bb9246a3ba0c8dfecb9d77155b",
    ),
    with(
        case(
            "Test_byMeta version string",
            r#"{{#each (byMeta "version" (service "svc"))}}{{@key}}:{{#each this}}{{ID}}{{/each}} {{/each}}"#,
            "v11:svcBsvcC v2:svcA ",
        ),
        BY_META,
    ),
    with(
        case(
            "Test_byMeta version number",
            r#"{{#each (byMeta "version_num|int" (service "svc"))}}{{@key}}:{{#each this}}{{ID}}{{/each}} {{/each}}"#,
            "00002:svcA 00011:svcBsvcC ",
        ),
        BY_META,
    ),
    with(
        fails("Test_byMeta bad version number", r#"{{#each (byMeta "bad_version_num|int" (service "svc"))}}{{/each}}"#, 14),
        BY_META,
    ),
    with(
        case(
            "Test_byMeta multiple meta",
            r#"{{#each (byMeta "env,version_num|int,version" (service "svc"))}}{{@key}}:{{#each this}}{{ID}}{{/each}} {{/each}}"#,
            "dev_00002_v2:svcA prod_00011_v11:svcBsvcC ",
        ),
        BY_META,
    ),
    with(
        case(
            "Test_byPort HealthService",
            r#"{{#each (byPort (service "svc"))}}{{@key}}:{{#each this}}{{ID}}{{/each}} {{/each}}"#,
            "8080:svcAsvcB 9090:svcC ",
        ),
        r#"{"nodes": [{"Node": "n", "Address": "1.1.1.1"}], "services": [
            {"Node": "n", "ID": "svcA", "Service": "svc", "Port": 8080},
            {"Node": "n", "ID": "svcB", "Service": "svc", "Port": 8080},
            {"Node": "n", "ID": "svcC", "Service": "svc", "Port": 9090}]}"#,
    ),
    case("Test_byPort empty", r#"{{#each (byPort (parseJSON "[]"))}}x{{else}}empty{{/each}}"#, "empty"),
];

const BY_META: &str = r#"{"nodes": [{"Node": "n", "Address": "1.1.1.1"}], "services": [
    {"Node": "n", "ID": "svcA", "Service": "svc", "Meta": {"version": "v2", "version_num": "2", "bad_version_num": "1zz", "env": "dev"}},
    {"Node": "n", "ID": "svcB", "Service": "svc", "Meta": {"version": "v11", "version_num": "11", "bad_version_num": "1zz", "env": "prod"}},
    {"Node": "n", "ID": "svcC", "Service": "svc", "Meta": {"version": "v11", "version_num": "11", "bad_version_num": "1zz", "env": "prod"}}]}"#;

fn run_case(c: &Case) -> Result<(), String> {
    run_case_with(c, c.template)
}

/// Runs case `c` with another template (a converted Go template) in place of its own.
pub(crate) fn run_case_with(c: &Case, template: &str) -> Result<(), String> {
    let run = render_case_with(c, template);
    match (c.want, run.code) {
        (Ok(want), 0) if run.stdout == want => Ok(()),
        (Err(code), got) if got == code => Ok(()),
        (want, _) => Err(format!(
            "{}: want {want:?}, got exit {} stdout {:?}\n{}",
            c.name, run.code, run.stdout, run.stderr
        )),
    }
}

/// Renders `template` with case `c`'s data and environment (`-once -dry`).
pub(crate) fn render_case_with(c: &Case, template: &str) -> Run {
    let d = Dir::new();
    d.write("data.json", c.data);
    d.write("in.hbs", template);
    d.write("content.txt", "content");
    let mut cmd = d.cmd();
    cmd.args(["-data=data.json", "-template=in.hbs", "-once", "-dry"]);
    for (k, v) in c.env {
        cmd.env(k, v);
    }
    Run::of(&mut cmd)
}

#[test]
fn consul_templates_execute_and_funcs_cases() {
    let failures: Vec<String> = CASES.iter().filter_map(|c| run_case(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} ported cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    eprintln!("{} consul-template cases ported and passing", CASES.len());
}

#[test]
fn strict_missing_key_and_missing_deps() {
    // err_missing_keys__true: with error_on_missing_key the missing field is an error.
    let d = Dir::new();
    d.write("data.json", "{}");
    d.write(
        "c.hcl",
        "template {\n  contents = \"{{Data.Foo}}\"\n  destination = \"out\"\n  error_on_missing_key = true\n}\n",
    );
    d.run(&["-config=c.hcl", "-data=data.json", "-once"])
        .code(14)
        .stderr_has("no value for Data.Foo");
    // missing_deps (library level): a pass without the value renders empty and is incomplete.
    let engine = consul_render::template::Engine::compile(
        "t",
        r#"{{key "foo"}}"#,
        &consul_render::template::Options::default(),
    )
    .unwrap();
    let r = engine
        .render(std::sync::Arc::new(consul_render::template::Store::new()))
        .unwrap();
    assert_eq!((r.output.as_str(), r.missing.len()), ("", 1));
}

#[test]
fn consul_templates_runner_cases() {
    // TestRunner_Run "multipass": {{ key (key "foo") }} renders once both have arrived.
    let d = Dir::new();
    d.write("data.json", r#"{"kv": {"foo": "bar", "bar": "zip"}}"#);
    d.write("in.hbs", r#"{{key (key "foo")}}"#);
    d.run(&["-data=data.json", "-template=in.hbs:out", "-once"])
        .code(0);
    assert_eq!(d.read("out"), "zip");
    // "runs_commands", "no_command_if_same_template", "no_duplicate_commands".
    d.write("in.hbs", "x");
    let args = [
        "-data=data.json",
        // (Not "a": a one-letter part is a drive letter, in consul-template too.)
        "-template=in.hbs:aa:echo ran >> runs",
        "-template=in.hbs:bb:echo ran >> runs",
        "-once",
    ];
    d.run(&args).code(0);
    assert_eq!(
        d.lines("runs"),
        1,
        "one run for a command two templates share"
    );
    d.run(&args).code(0);
    assert_eq!(d.lines("runs"), 1, "no command when nothing changed");
    // "env": the command sees the Consul address.
    d.write("in.hbs", "y");
    let run = d.run(&[
        "-data=data.json",
        "-consul-addr=127.0.0.1:8501",
        "-template=in.hbs:cc:echo $CONSUL_HTTP_ADDR",
        "-once",
    ]);
    run.code(0).stdout_has("127.0.0.1:8501");
}

#[test]
fn consul_templates_command_cases() {
    // TestRunner_command: what each command form prints.
    let cases: &[(&str, &str)] = &[
        ("echo", "\n"),
        ("printf hi", "hi"),
        ("bash -c 'printf hi'", "hi"),
        ("sh -c 'printf hi'", "hi"),
        (r#"sh -c "printf hi""#, "hi"),
        ("printf $(printf foo)", "foo"),
        ("seq 1 5 | grep 3", "3\n"),
        ("sh -c 'if true; then printf foo; fi'", "foo"),
        ("sh -c 'printf $(which /bin/sh)'", "/bin/sh"),
        (
            "sh -c '{ if [ -f /bin/sh ]; then printf foo; else printf bar; fi }'",
            "foo",
        ),
        ("true && true && printf and", "and"),
        ("false || false || printf or", "or"),
        ("(sleep .1; printf hi) &", "hi"),
        ("printf ${FOO}", "bar"),
    ];
    let d = Dir::new();
    d.write("data.json", "{}");
    let mut failures = Vec::new();
    for (i, (command, want)) in cases.iter().enumerate() {
        d.write("in.hbs", &format!("{i}"));
        let template = format!("-template=in.hbs:out{i}:{command}");
        let run = Run::of(
            d.cmd()
                .env("FOO", "bar")
                .args(["-data=data.json", &template, "-once"]),
        );
        if run.code != 0 || run.stdout != *want {
            failures.push(format!(
                "{command:?}: exit {} stdout {:?}",
                run.code, run.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn consul_templates_file_sandbox_cases() {
    // TestFileSandbox, through `file` with sandbox_path: a path (after `..` and symlinks) must
    // stay inside the sandbox; without one, any path is read.
    let d = Dir::new();
    d.write("data.json", "{}");
    d.write("sandbox/path/to/file", "inside");
    d.write("outside", "secret");
    std::os::unix::fs::symlink(
        d.join("sandbox/path/to/file"),
        d.join("sandbox/path/to/ok-symlink"),
    )
    .unwrap();
    std::os::unix::fs::symlink(d.join("outside"), d.join("sandbox/path/to/bad-symlink")).unwrap();
    let sandbox = d.join("sandbox");
    let abs = |p: &str| d.join(p).display().to_string();
    let cases: Vec<(String, Option<&std::path::Path>, Result<&str, &str>)> = vec![
        ("absolute_path_no_sandbox".into(), None, Ok("inside")),
        ("relative_path_no_sandbox".into(), None, Ok("inside")),
        (
            "absolute_path_with_sandbox".into(),
            Some(&sandbox),
            Ok("inside"),
        ),
        (
            "relative_path_in_sandbox".into(),
            Some(&sandbox),
            Ok("inside"),
        ),
        (
            "symlink_path_in_sandbox".into(),
            Some(&sandbox),
            Ok("inside"),
        ),
        (
            "relative_path_escaping_sandbox".into(),
            Some(&sandbox),
            Err("is outside of sandbox"),
        ),
        (
            "symlink_escaping_sandbox".into(),
            Some(&sandbox),
            Err("is outside of sandbox"),
        ),
    ];
    let paths = [
        abs("sandbox/path/to/file"),
        "./sandbox/path/to/file".to_string(),
        abs("sandbox/path/to/file"),
        abs("sandbox/path/to/../to/file"),
        abs("sandbox/path/to/ok-symlink"),
        abs("sandbox/path/../../outside"),
        abs("sandbox/path/to/bad-symlink"),
    ];
    let mut failures = Vec::new();
    for ((name, sandbox, want), path) in cases.iter().zip(paths) {
        let sandbox_line = sandbox.map_or(String::new(), |s| {
            format!("  sandbox_path = \"{}\"\n", s.display())
        });
        d.write(
            "c.hcl",
            &format!(
                "template {{\n  contents = \"{{{{file \\\"{path}\\\"}}}}\"\n{sandbox_line}}}\n"
            ),
        );
        let run = d.run(&["-config=c.hcl", "-data=data.json", "-once", "-dry"]);
        let ok = match want {
            Ok(text) => run.code == 0 && run.stdout == *text,
            Err(message) => run.code == 14 && run.stderr.contains(message),
        };
        if !ok {
            failures.push(format!(
                "{name}: exit {} stdout {:?} stderr {}",
                run.code, run.stdout, run.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
