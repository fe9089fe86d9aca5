//! Compile-time behaviour of the macros: what compiles, and the errors for what does not.
//! Regenerate the expected output with `TRYBUILD=overwrite`, then read every `.stderr`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*/*.rs");
}
