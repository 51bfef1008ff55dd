//! The Starlark engine for custom property mappings.
//!
//! A mapping is written the way authentik's are: the *body* of a function. It
//! is wrapped as
//!
//! ```text
//! def handler(user, group, provider, connection, request):
//!     <the admin's expression, indented>
//! ```
//!
//! parsed and compiled once ([`CompiledMapping::compile`]), and the frozen
//! `handler` is then called for each object ([`CompiledMapping::evaluate`]) on
//! a fresh temporary heap, under an instruction (tick) limit and a heap limit.
//!
//! The body returns a dict (the properties to merge), `None` (nothing to add),
//! or calls `skip_object()` (authentik's `raise SkipObject`). Besides
//! Starlark's standard library and `json`, it can call `regex_match`,
//! `regex_replace` and `list_flatten`, with authentik's meaning. It has no
//! `load`, no file, network or environment access.

mod builtins;
mod convert;

use super::{AppliesTo, MappingError, MappingErrorKind, MappingInput, MappingOutput};
use starlark::codemap::FileSpan;
use starlark::environment::{Globals, GlobalsBuilder, LibraryExtension, Module};
use starlark::eval::Evaluator;
use starlark::syntax::{AstModule, Dialect};
use starlark::values::OwnedFrozenValue;
use std::sync::OnceLock;

/// The line the admin's expression is wrapped in; the expression starts on the next line.
const WRAPPER: &str = "def handler(user, group, provider, connection, request):\n";

/// How far each line of the expression is indented inside [`WRAPPER`].
const INDENT: &str = "    ";

/// Ticks (function calls and loop iterations) one evaluation may take.
pub const MAX_TICKS: u64 = 100_000;

/// Bytes of Starlark heap one evaluation may use (checked every 1,000 ticks).
pub const MAX_HEAP_BYTES: usize = 32 * 1024 * 1024;

/// Nested calls one evaluation may make.
const MAX_CALL_DEPTH: usize = 50;

/// A custom mapping, compiled once and evaluated many times.
#[derive(Debug)]
pub struct CompiledMapping {
    name: String,
    applies_to: AppliesTo,
    /// The frozen `handler` function; it keeps its frozen heap alive.
    handler: OwnedFrozenValue,
    /// The parameters the expression reads; the others are not built.
    uses: convert::Uses,
}

/// The Starlark dialect of mappings: standard Starlark with f-strings, without `load`.
fn dialect() -> Dialect {
    Dialect {
        enable_load: false,
        enable_f_strings: true,
        ..Dialect::Standard
    }
}

/// Standard library, `json` and our builtins, built once per process.
fn globals() -> &'static Globals {
    static GLOBALS: OnceLock<Globals> = OnceLock::new();
    GLOBALS.get_or_init(|| {
        GlobalsBuilder::extended_by(&[LibraryExtension::Json])
            .with(builtins::mapping_builtins)
            .build()
    })
}

impl CompiledMapping {
    /// Compiles `expression`, a function body in authentik's style.
    pub fn compile(
        name: &str,
        applies_to: AppliesTo,
        expression: &str,
    ) -> Result<Self, MappingError> {
        let lines: Vec<&str> = expression.lines().collect();
        if lines.iter().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#')
        }) {
            return Err(MappingError {
                mapping: name.to_owned(),
                kind: MappingErrorKind::Compile,
                line: None,
                column: None,
                message: "the expression is empty: it must return a dict or None, \
                          or call skip_object()"
                    .to_owned(),
            });
        }
        let mut source = String::with_capacity(WRAPPER.len() + expression.len() * 2);
        source.push_str(WRAPPER);
        for line in &lines {
            source.push_str(INDENT);
            source.push_str(line);
            source.push('\n');
        }
        let error = |e: starlark::Error| {
            let mut error = located_error(name, MappingErrorKind::Compile, &e);
            if let Some(hint) = python_hint(&error.message) {
                error.message = format!("{} ({hint})", error.message);
            }
            // A parse error at the end of the file is reported after the last
            // line; report it at the end of the last line instead.
            if let (Some(line), Some(last)) = (error.line, lines.last())
                && line as usize > lines.len()
            {
                error.line = u32::try_from(lines.len()).ok();
                error.column = u32::try_from(last.chars().count() + 1).ok();
            }
            error
        };
        let ast = AstModule::parse(name, source, &dialect()).map_err(error)?;
        let frozen = Module::with_temp_heap(|module| {
            Evaluator::new(&module)
                .eval_module(ast, globals())
                .map_err(error)?;
            module.freeze().map_err(|e| error(e.into()))
        })?;
        let handler = frozen
            .get("handler")
            .map_err(|e| error(starlark::Error::from(e)))?;
        Ok(Self {
            name: name.to_owned(),
            applies_to,
            handler,
            uses: convert::Uses::scan(expression),
        })
    }

    /// The mapping's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which objects it applies to.
    pub fn applies_to(&self) -> AppliesTo {
        self.applies_to
    }

    /// Runs the mapping for one object.
    pub fn evaluate(&self, input: &MappingInput<'_>) -> Result<MappingOutput, MappingError> {
        Module::with_temp_heap(|module| {
            let mut eval = Evaluator::new(&module);
            eval.set_max_tick_count(MAX_TICKS)
                .and_then(|()| eval.set_max_heap_size(MAX_HEAP_BYTES))
                .and_then(|()| eval.set_max_callstack_size(MAX_CALL_DEPTH))
                .map_err(|e| self.error(MappingErrorKind::Runtime, e.to_string()))?;
            let heap = module.heap();
            let handler = heap.access_owned_frozen_value(&self.handler);
            let args = convert::arguments(input, self.uses, heap);
            match eval.eval_function(handler, &args, &[]) {
                // starlark checks the heap only every 1,000 ticks, so one big
                // allocation just before returning would slip through.
                Ok(_) if heap.peak_allocated_bytes() > MAX_HEAP_BYTES => Err(self.error(
                    MappingErrorKind::Limit,
                    format!("Heap memory limit of {MAX_HEAP_BYTES} bytes exceeded."),
                )),
                Ok(result) => {
                    convert::output(result).map_err(|m| self.error(MappingErrorKind::BadResult, m))
                }
                Err(e) if builtins::is_skip(&e) => Ok(MappingOutput::Skip),
                Err(e) => Err(located_error(&self.name, runtime_kind(&e), &e)),
            }
        })
    }

    fn error(&self, kind: MappingErrorKind, message: String) -> MappingError {
        MappingError {
            mapping: self.name.clone(),
            kind,
            line: None,
            column: None,
            message,
        }
    }
}

/// Advice for Python that authentik accepts and Starlark does not.
fn python_hint(message: &str) -> Option<&'static str> {
    let keyword = message
        .strip_prefix("Parse error: cannot use reserved keyword `")?
        .strip_suffix('`')?;
    Some(match keyword {
        "raise" => {
            "call skip_object() instead of `raise SkipObject`, or fail(message) to stop with an error"
        }
        "try" | "except" | "finally" => {
            "Starlark has no exceptions: check values first, e.g. with `.get()` and `if`"
        }
        "while" => "loop with `for` over a list or a `range()`",
        "import" | "from" => {
            "mappings cannot import modules; regex_match, regex_replace, list_flatten and json are built in"
        }
        _ => return None,
    })
}

/// `Limit` for the tick, heap and call-depth limits; `Runtime` otherwise.
fn runtime_kind(e: &starlark::Error) -> MappingErrorKind {
    if matches!(e.kind(), starlark::ErrorKind::StackOverflow(_)) {
        return MappingErrorKind::Limit;
    }
    // starlark does not export its evaluator error type, so recognise its messages.
    let message = e.without_diagnostic().to_string();
    if message.contains("ticks has been exceeded") || message.contains("Heap memory limit") {
        MappingErrorKind::Limit
    } else {
        MappingErrorKind::Runtime
    }
}

/// A [`MappingError`] at the position of `e` in the admin's expression.
fn located_error(mapping: &str, kind: MappingErrorKind, e: &starlark::Error) -> MappingError {
    let (line, column) = position(e).unzip();
    let mut message = e.without_diagnostic().to_string();
    if kind == MappingErrorKind::Limit {
        // The heap limit's message goes on to say the position may be off; we
        // give no position for limits.
        message.truncate(message.find('\n').unwrap_or(message.len()));
    }
    MappingError {
        mapping: mapping.to_owned(),
        kind,
        line: line.filter(|_| kind != MappingErrorKind::Limit),
        column: column.filter(|_| kind != MappingErrorKind::Limit),
        message,
    }
}

/// The 1-based line and column in the admin's expression where `e` happened:
/// the error's own span, else the innermost located frame of its call stack.
fn position(e: &starlark::Error) -> Option<(u32, u32)> {
    let span: &FileSpan = e.span().or_else(|| {
        e.call_stack()
            .frames
            .iter()
            .rev()
            .find_map(|f| f.location.as_ref())
    })?;
    let begin = span.resolve_span().begin;
    // Line 0 (0-based) is the wrapper, so line n of the wrapped source is line n
    // (1-based) of the expression; columns lose the indent.
    if begin.line == 0 {
        return None;
    }
    let line = u32::try_from(begin.line).ok()?;
    let column = begin.column.saturating_sub(INDENT.len()) + 1;
    Some((line, u32::try_from(column).ok()?))
}

#[cfg(test)]
mod tests {
    use super::super::{Connection, ProviderInfo, Subject};
    use super::*;
    use crate::authentik::{AkGroup, AkUser};
    use crate::diff::Body;
    use crate::ids::EntraObjectId;
    use serde_json::{Value, json};
    use std::time::{Duration, Instant};

    fn user() -> AkUser {
        serde_json::from_value(json!({
            "pk": 42,
            "username": "adele",
            "name": "Adele Vance",
            "email": "adele@contoso.com",
            "is_active": true,
            "uid": "f00d",
            "type": "internal",
            "groups": ["00000000-0000-0000-0000-000000000007"],
            "attributes": {"department": "Sales", "address": {"city": "Oslo", "zip": ["0150"]}},
        }))
        .unwrap()
    }

    fn group() -> AkGroup {
        serde_json::from_value(
            json!({"pk": "00000000-0000-0000-0000-000000000007", "name": "Sales EMEA", "users": [42]}),
        )
        .unwrap()
    }

    fn provider() -> ProviderInfo {
        ProviderInfo {
            name: "entra".into(),
            tenant_id: "tenant".into(),
            client_id: "client".into(),
            domains: vec!["contoso.com".into(), "contoso.onmicrosoft.com".into()],
        }
    }

    fn body(v: Value) -> Body {
        v.as_object().cloned().unwrap()
    }

    /// Compiles `expression` as a user mapping and runs it for [`user`] without a link.
    fn run_user(expression: &str) -> Result<MappingOutput, MappingError> {
        let m = CompiledMapping::compile("m", AppliesTo::User, expression).unwrap();
        m.evaluate(&MappingInput {
            subject: Subject::User(&user()),
            provider: &provider(),
            connection: None,
        })
    }

    fn run_user_err(expression: &str) -> MappingError {
        match run_user(expression) {
            Ok(out) => panic!("expected an error, got {out:?}"),
            Err(e) => e,
        }
    }

    fn compile_err(name: &str, expression: &str) -> MappingError {
        match CompiledMapping::compile(name, AppliesTo::User, expression) {
            Ok(_) => panic!("{expression:?} compiled"),
            Err(e) => e,
        }
    }

    #[test]
    fn compiled_mapping_is_send_and_sync() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<CompiledMapping>();
    }

    #[test]
    fn compile_error_names_mapping_line_and_column() {
        let e = compile_err("20-department", "x = 1\nreturn {\"a\": usr.name}");
        assert_eq!(e.mapping, "20-department");
        assert_eq!(e.kind, MappingErrorKind::Compile);
        assert_eq!((e.line, e.column), (Some(2), Some(14)), "{e}");
        assert!(e.message.contains("did you mean `user`"), "{e}");
        assert!(e.to_string().starts_with(
            "property mapping \"20-department\" does not compile at line 2, column 14: "
        ));
    }

    #[test]
    fn parse_error_at_end_of_input_points_at_the_last_line() {
        let e = compile_err("m", "x = 1\nreturn {\"a\": 1");
        assert_eq!(e.kind, MappingErrorKind::Compile);
        assert_eq!((e.line, e.column), (Some(2), Some(15)), "{e}");
        assert!(e.message.contains("Parse error"), "{e}");
    }

    #[test]
    fn empty_expression_does_not_compile() {
        let e = compile_err("m", "  \n# nothing\n");
        assert_eq!(e.kind, MappingErrorKind::Compile);
        assert!(e.message.contains("empty"), "{e}");
    }

    #[test]
    fn python_only_keywords_get_a_hint() {
        let e = compile_err("m", "if user.is_active:\n    raise SkipObject\nreturn None");
        assert_eq!((e.line, e.column), (Some(2), Some(5)), "{e}");
        assert!(e.message.contains("call skip_object() instead"), "{e}");
        let e = compile_err("m", "import re\nreturn None");
        assert!(e.message.contains("cannot import modules"), "{e}");
    }

    #[test]
    fn mappings_cannot_load_or_print() {
        let e = compile_err("m", "load('x.star', 'y')\nreturn None");
        assert_eq!(
            (e.kind, e.line),
            (MappingErrorKind::Compile, Some(1)),
            "{e}"
        );
        let e = compile_err("m", "print(user.name)\nreturn None");
        assert!(e.message.contains("`print` not found"), "{e}");
    }

    #[test]
    fn runtime_error_has_line_and_column() {
        let e = run_user_err(
            "dept = user.attributes.get('department')\nreturn {'displayName': user.nme}",
        );
        assert_eq!(e.mapping, "m");
        assert_eq!(e.kind, MappingErrorKind::Runtime);
        assert_eq!((e.line, e.column), (Some(2), Some(24)), "{e}");
        assert!(e.message.contains("did you mean `name`"), "{e}");

        let e = run_user_err("if user.is_active:\n    fail('no department for', user.username)");
        assert_eq!(
            (e.kind, e.line, e.column),
            (MappingErrorKind::Runtime, Some(2), Some(5))
        );
        assert!(e.message.contains("no department for adele"), "{e}");
    }

    #[test]
    fn skip_object_skips_when_returned_or_just_called() {
        assert_eq!(run_user("return skip_object()"), Ok(MappingOutput::Skip));
        assert_eq!(
            run_user("if user.is_active:\n    skip_object()\nreturn {'department': 'x'}"),
            Ok(MappingOutput::Skip)
        );
        assert_eq!(
            run_user("if not user.is_active:\n    skip_object()\nreturn None"),
            Ok(MappingOutput::Nothing)
        );
    }

    #[test]
    fn none_contributes_nothing() {
        assert_eq!(run_user("return None"), Ok(MappingOutput::Nothing));
        // Falling off the end returns None, as in Python.
        assert_eq!(run_user("x = 1"), Ok(MappingOutput::Nothing));
    }

    #[test]
    fn runaway_loop_is_stopped_quickly_by_the_tick_limit() {
        let start = Instant::now();
        let e = run_user_err("n = 0\nfor i in range(1000000000):\n    n = i\nreturn {'n': n}");
        assert_eq!(e.kind, MappingErrorKind::Limit, "{e}");
        assert!(e.message.contains("ticks"), "{e}");
        // 10^9 iterations would take many minutes; the limit stops it after
        // 10^5 (tens of milliseconds in an unoptimised build, more under load).
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn runaway_memory_is_stopped_by_the_heap_limit() {
        let e = run_user_err(
            "x = []\nfor i in range(90000):\n    x.append(str(i) * 1000)\nreturn None",
        );
        assert_eq!(e.kind, MappingErrorKind::Limit, "{e}");
        assert!(e.message.contains("Heap memory limit"), "{e}");
    }

    #[test]
    fn one_big_allocation_before_returning_is_a_limit() {
        let e = run_user_err("return {'department': ('x' * 1000000) * 40}");
        assert_eq!(e.kind, MappingErrorKind::Limit, "{e}");
        assert!(e.message.contains("Heap memory limit"), "{e}");
    }

    #[test]
    fn runaway_recursion_is_a_limit() {
        let e = run_user_err("def f(n):\n    return f(n + 1)\nreturn f(0)");
        assert_eq!(e.kind, MappingErrorKind::Limit, "{e}");
    }

    #[test]
    fn other_return_types_are_bad_results() {
        for (expression, what) in [
            ("return 'x'", "not a string"),
            ("return [{'a': 1}]", "not a list"),
            ("return user", "not a struct"),
            ("return {'a': len}", "not valid JSON"),
            ("return {1: 'one'}", "keys must be strings"),
            ("return {'f': float('nan')}", "not valid JSON"),
            ("x = []\nx.append(x)\nreturn {'x': x}", "contains itself"),
        ] {
            let e = run_user_err(expression);
            assert_eq!(e.kind, MappingErrorKind::BadResult, "{expression}: {e}");
            assert_eq!(e.mapping, "m");
            assert!(e.message.contains(what), "{expression}: {e}");
        }
    }

    #[test]
    fn results_convert_to_json() {
        assert_eq!(
            run_user(
                "return {'t': (1, 2.5, None), 'big': 10000000000, 'neg': -3, 'b': False, \
                 'nested': {'l': [{'k': 'v'}]}, 's': 'é', 'p': provider}",
            ),
            Ok(MappingOutput::Body(body(json!({
                "t": [1, 2.5, null], "big": 10_000_000_000_i64, "neg": -3, "b": false,
                "nested": {"l": [{"k": "v"}]}, "s": "é",
                "p": {"name": "entra", "tenant_id": "tenant", "client_id": "client",
                      "domains": ["contoso.com", "contoso.onmicrosoft.com"]},
            }))))
        );
    }

    #[test]
    fn user_is_a_struct_with_attributes_as_dicts() {
        let out = run_user(
            r#"return {
    "pk": user.pk, "username": user.username, "name": user.name, "email": user.email,
    "active": user.is_active, "uid": user.uid, "type": user.type, "groups": user.groups,
    "city": user.attributes["address"].get("city"), "zip": user.attributes["address"]["zip"][0],
    "missing": user.attributes.get("missing", "default"),
}"#,
        );
        assert_eq!(
            out,
            Ok(MappingOutput::Body(body(json!({
                "pk": 42, "username": "adele", "name": "Adele Vance", "email": "adele@contoso.com",
                "active": true, "uid": "f00d", "type": "internal",
                "groups": ["00000000-0000-0000-0000-000000000007"],
                "city": "Oslo", "zip": "0150", "missing": "default",
            }))))
        );
    }

    #[test]
    fn request_user_is_the_user_and_provider_is_readable() {
        let out = run_user(
            "return {'same': request.user == user, 'upn': f'{request.user.username}@{provider.domains[0]}', \
             'tenant': provider.tenant_id, 'group': group}",
        );
        assert_eq!(
            out,
            Ok(MappingOutput::Body(body(json!(
                {"same": true, "upn": "adele@contoso.com", "tenant": "tenant", "group": null}
            ))))
        );
    }

    #[test]
    fn group_mapping_reads_the_group() {
        let m = CompiledMapping::compile(
            "g",
            AppliesTo::Group,
            "if user != None or request.user != None:\n    fail('no user in group mappings')\n\
             return {'description': group.name.lower(), 'members': len(group.users)}",
        )
        .unwrap();
        assert_eq!(m.applies_to(), AppliesTo::Group);
        let out = m.evaluate(&MappingInput {
            subject: Subject::Group(&group()),
            provider: &provider(),
            connection: None,
        });
        assert_eq!(
            out,
            Ok(MappingOutput::Body(body(
                json!({"description": "sales emea", "members": 1})
            )))
        );
    }

    #[test]
    fn connection_is_none_before_the_first_write() {
        let m = CompiledMapping::compile(
            "m",
            AppliesTo::User,
            "if connection == None:\n    return {'new': True}\n\
             return {'id': connection.entra_id, 'same': connection.microsoft_id == connection.entra_id, \
             'immutable': connection.attributes.get('onPremisesImmutableId')}",
        )
        .unwrap();
        let u = user();
        let p = provider();
        let mut input = MappingInput {
            subject: Subject::User(&u),
            provider: &p,
            connection: None,
        };
        assert_eq!(
            m.evaluate(&input),
            Ok(MappingOutput::Body(body(json!({"new": true}))))
        );
        let id = EntraObjectId::parse("5f2c1b3a-0000-4000-8000-000000000001").unwrap();
        let attributes = body(json!({"onPremisesImmutableId": "f00d"}));
        input.connection = Some(Connection {
            entra_id: &id,
            attributes: &attributes,
        });
        assert_eq!(
            m.evaluate(&input),
            Ok(MappingOutput::Body(body(json!({
                "id": "5f2c1b3a-0000-4000-8000-000000000001", "same": true, "immutable": "f00d"
            }))))
        );
    }

    #[test]
    fn authentik_helpers_and_f_strings() {
        let out = run_user(
            r#"return {
    "m": regex_match(user.email, "@contoso\.com$"),
    "n": regex_match(user.email, "^x"),
    "r": regex_replace(user.name, r"(\w+) (\w+)", r"\2, \g<1>"),
    "f1": list_flatten(["a", "b"]),
    "f0": list_flatten([]),
    "fs": list_flatten("s"),
    "fstr": f"{user.username}-{user.pk}",
}"#,
        );
        assert_eq!(
            out,
            Ok(MappingOutput::Body(body(json!({
                "m": true, "n": false, "r": "Vance, Adele", "f1": "a", "f0": null, "fs": "s",
                "fstr": "adele-42",
            }))))
        );
        let e = run_user_err("return {'x': regex_match(user.name, '(')}");
        assert_eq!(
            (e.kind, e.line),
            (MappingErrorKind::Runtime, Some(1)),
            "{e}"
        );
        assert!(e.message.contains("regex parse error"), "{e}");
    }

    #[test]
    fn a_mapping_is_reusable_across_objects_and_threads() {
        let m = CompiledMapping::compile("m", AppliesTo::User, "return {'n': user.name}").unwrap();
        let p = provider();
        std::thread::scope(|s| {
            for i in 0..4 {
                let (m, p) = (&m, &p);
                s.spawn(move || {
                    let mut u = user();
                    for j in 0..50 {
                        u.name = format!("{i}-{j}");
                        let out = m.evaluate(&MappingInput {
                            subject: Subject::User(&u),
                            provider: p,
                            connection: None,
                        });
                        assert_eq!(out, Ok(MappingOutput::Body(body(json!({"n": u.name})))));
                    }
                });
            }
        });
    }
}
