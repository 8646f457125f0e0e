//! Go-style globs with `*` and `?`, as consul-template uses them for the exec environment's
//! allow and deny lists and for `function_denylist` (`sprig_*`).

/// True when `name` matches `pattern`. Iterative with one backtrack point, so linear in
/// practice and never exponential (`*a*a*a…b` against a long name).
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("CONSUL_*", "CONSUL_HTTP_ADDR"));
        assert!(matches("A?C", "ABC"));
        assert!(!matches("A?C", "ABBC"));
        assert!(matches("*", ""));
        assert!(!matches("PATH", "PATHX"));
        assert!(matches("sprig_*", "sprig_upper"));
        assert!(matches("*a*b", "xaxxb"));
        assert!(!matches("*a*b", "xaxxc"));
        let long = "a".repeat(10_000);
        assert!(!matches(&format!("{}b", "*a".repeat(50)), &long));
    }
}
