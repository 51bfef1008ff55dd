//! The functions mappings may call beyond Starlark's standard library, with
//! the meaning authentik's expression evaluator gives them.

use regex::Regex;
use starlark::environment::GlobalsBuilder;
use starlark::starlark_module;
use starlark::values::Value;
use starlark::values::list::ListRef;
use starlark::values::typing::StarlarkNever;
use std::cell::RefCell;
use std::collections::HashMap;

/// Raised by `skip_object()`; the engine turns it into [`super::MappingOutput::Skip`].
#[derive(Debug, thiserror::Error)]
#[error("skip_object() was called")]
struct SkipObject;

/// Whether `e` is the error `skip_object()` raises.
pub(super) fn is_skip(e: &starlark::Error) -> bool {
    match e.kind() {
        starlark::ErrorKind::Native(e) => e.downcast_ref::<SkipObject>().is_some(),
        _ => false,
    }
}

/// Compiled patterns kept per thread, so a mapping's regex is not rebuilt for every object.
const REGEX_CACHE_SIZE: usize = 64;

thread_local! {
    static REGEXES: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

/// Runs `f` with `pattern` compiled, from the per-thread cache when possible.
fn with_regex<R>(pattern: &str, f: impl FnOnce(&Regex) -> R) -> starlark::Result<R> {
    REGEXES.with_borrow_mut(|cache| {
        if let Some(re) = cache.get(pattern) {
            return Ok(f(re));
        }
        let re = Regex::new(pattern).map_err(starlark::Error::new_native)?;
        let result = f(&re);
        if cache.len() >= REGEX_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), re);
        Ok(result)
    })
}

/// Turns a Python `re.sub` replacement (`\1`, `\g<1>`, `\g<name>`, `\\`) into
/// the `regex` crate's syntax (`${1}`, `${name}`), escaping `$`.
fn python_replacement(repl: &str) -> String {
    let mut out = String::with_capacity(repl.len() + 8);
    let mut chars = repl.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    out.push_str("${");
                    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                        out.push(d);
                        chars.next();
                    }
                    out.push('}');
                }
                Some('g') => {
                    chars.next();
                    if chars.peek() == Some(&'<') {
                        chars.next();
                        out.push_str("${");
                        for n in chars.by_ref() {
                            if n == '>' {
                                break;
                            }
                            out.push(n);
                        }
                        out.push('}');
                    } else {
                        out.push_str("\\g");
                    }
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('t') => {
                    chars.next();
                    out.push('\t');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// The globals mappings get on top of Starlark's standard library.
#[starlark_module]
pub(super) fn mapping_builtins(builder: &mut GlobalsBuilder) {
    /// Skips this object: it is neither created nor updated (authentik's
    /// `raise SkipObject`). Stops the mapping at once.
    fn skip_object() -> starlark::Result<StarlarkNever> {
        Err(starlark::Error::new_native(SkipObject))
    }

    /// Whether `pattern` matches anywhere in `value` (Python's `re.search`).
    fn regex_match(
        #[starlark(require = pos)] value: &str,
        #[starlark(require = pos)] pattern: &str,
    ) -> starlark::Result<bool> {
        with_regex(pattern, |re| re.is_match(value))
    }

    /// Replaces every match of `pattern` in `value` by `replacement`, which may
    /// refer to groups as `\1` or `\g<name>` (Python's `re.sub`).
    fn regex_replace(
        #[starlark(require = pos)] value: &str,
        #[starlark(require = pos)] pattern: &str,
        #[starlark(require = pos)] replacement: &str,
    ) -> starlark::Result<String> {
        let replacement = python_replacement(replacement);
        with_regex(pattern, |re| {
            re.replace_all(value, replacement.as_str()).into_owned()
        })
    }

    /// The first item of a list (`None` if it is empty); any other value unchanged.
    fn list_flatten<'v>(
        #[starlark(require = pos)] value: Value<'v>,
    ) -> starlark::Result<Value<'v>> {
        Ok(match ListRef::from_value(value) {
            Some(list) => list
                .content()
                .first()
                .copied()
                .unwrap_or_else(Value::new_none),
            None => value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::python_replacement;

    #[test]
    fn python_replacements_become_regex_crate_syntax() {
        assert_eq!(python_replacement(r"\1-\g<2>"), "${1}-${2}");
        assert_eq!(python_replacement(r"\g<first> $5"), "${first} $$5");
        assert_eq!(python_replacement(r"a\\b\q"), r"a\b\q");
        assert_eq!(python_replacement(r"\12x"), "${12}x");
    }
}
