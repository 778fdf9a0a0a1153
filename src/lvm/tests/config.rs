use std::borrow::Cow;

use crate::lvm::config::{
    Config, Layout, NewValue, NodeId, ParseMode, Scalar, Value, parse, parse_with,
};
use crate::lvm::error::ParseErrorKind;
use proptest::prelude::*;

fn s(v: &str) -> Scalar<'_> {
    Scalar::Str(Cow::Borrowed(v))
}

fn val<'c, 'a>(c: &'c Config<'a>, path: &str) -> Value<'c, 'a> {
    c.find(path).and_then(|n| n.value()).unwrap()
}

#[test]
fn strings_and_escapes() {
    let c = parse(br#"a = "x \"q\" \\ \n y" b = 'it' c = bare-word#c"#).unwrap();
    // Only \" and \\ are unescaped; "\n" stays a backslash and an n.
    assert_eq!(val(&c, "a").items(), &[s(r#"x "q" \ \n y"#)]);
    assert_eq!(val(&c, "b").items(), &[s("it")]);
    assert_eq!(val(&c, "c").items(), &[s("bare-word")]);
    // 'it''s': after the value 'it', the quoted 's' is read as the next *key*.
    let e = parse(b"b = 'it''s' c = 1").unwrap_err();
    assert!(matches!(e.kind, ParseErrorKind::Unexpected { .. }));
}

#[test]
fn single_quote_then_key() {
    let c = parse(b"b = 'x#y' c = 1").unwrap();
    assert_eq!(val(&c, "b").items(), &[s("x#y")]);
    assert_eq!(val(&c, "c").items(), &[Scalar::Int(1)]);
}

#[test]
fn comments_and_hash_in_strings() {
    let c = parse(b"# top\na = \"x # not a comment\" # comment\nb { # c\n c = 2 }\n").unwrap();
    assert_eq!(val(&c, "a").items(), &[s("x # not a comment")]);
    assert_eq!(val(&c, "b/c").items(), &[Scalar::Int(2)]);
}

/// Blanks and comments between tokens, in every place the lexer meets them: positions
/// after them still count lines and columns from the start of the text.
#[test]
fn comments_between_tokens_keep_positions() {
    let c = parse(b"a = 1#c\n#d\n\tb\t=\r\n2 # e\n#f").unwrap();
    assert_eq!(val(&c, "a").items(), &[Scalar::Int(1)]);
    assert_eq!(val(&c, "b").items(), &[Scalar::Int(2)]);
    let e = parse(b"# x\n  # y\n\n  }").unwrap_err();
    assert_eq!((e.line, e.col, e.offset), (4, 3, 13));
    assert!(matches!(e.kind, ParseErrorKind::Unexpected { .. }), "{e}");
    // A comment that runs to the end of the text ends it.
    let e = parse(b"a = # 1").unwrap_err();
    assert_eq!((e.kind, e.offset), (ParseErrorKind::ExpectedValue, 7));
}

#[test]
fn numbers_like_libdm() {
    let c = parse(
        b"a = -1\nb = 010\nc = 08\nd = 1.5\ne = .5\nf = -0.25\ng = +7\nh = 9223372036854775807\n",
    )
    .unwrap();
    assert_eq!(val(&c, "a").items(), &[Scalar::Int(-1)]);
    assert_eq!(val(&c, "b").items(), &[Scalar::Int(8)]);
    // strtoll stops at the 8: octal "0".
    assert_eq!(val(&c, "c").items(), &[Scalar::Int(0)]);
    assert_eq!(val(&c, "d").items(), &[Scalar::Float(1.5)]);
    assert_eq!(val(&c, "e").items(), &[Scalar::Float(0.5)]);
    assert_eq!(val(&c, "f").items(), &[Scalar::Float(-0.25)]);
    assert_eq!(val(&c, "g").items(), &[Scalar::Int(7)]);
    assert_eq!(val(&c, "h").items(), &[Scalar::Int(i64::MAX)]);
    let e = parse(b"a = 9223372036854775808").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::IntRange);
    assert_eq!(
        parse(b"a = -9223372036854775808")
            .unwrap()
            .nodes()
            .next()
            .unwrap()
            .value(),
        Some(Value::Scalar(&Scalar::Int(i64::MIN)))
    );
}

#[test]
fn hex_is_a_syntax_error_in_practice() {
    // libdm reads 16 from "0x10" but then lexes "x10" as a key that lacks '='.
    let e = parse(b"a = 0x10\nb = 1\n").unwrap_err();
    assert!(matches!(e.kind, ParseErrorKind::Unexpected { .. }), "{e}");
    // ... unless it happens to be followed by '=': then it *is* a key.
    let c = parse(b"a = 0x10 = 5").unwrap();
    assert_eq!(val(&c, "a").items(), &[Scalar::Int(16)]);
    assert_eq!(val(&c, "x10").items(), &[Scalar::Int(5)]);
}

#[test]
fn arrays() {
    let c =
        parse(b"a = [1, 2, 3]\nb = [\"x\" \"y\", 'z']\nc = []\nd = [\"pv0\", 0,\n\"pv1\", 0\n]\n")
            .unwrap();
    assert_eq!(val(&c, "a").items().len(), 3);
    assert_eq!(val(&c, "b").items(), &[s("x"), s("y"), s("z")]);
    assert_eq!(val(&c, "c"), Value::Array(&[]));
    assert_eq!(
        val(&c, "d").items(),
        &[s("pv0"), Scalar::Int(0), s("pv1"), Scalar::Int(0)]
    );
    // Without a comma only a quoted string may follow.
    let e = parse(b"a = [1 2]").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::ExpectedValue);
    assert_eq!((e.line, e.col), (1, 8));
    // Bare words in arrays swallow the ',' and ']' (libdm lexes "a,b]" as one word).
    let e = parse(b"k = [a,b]\n").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::ExpectedValue);
    // Nested arrays do not exist.
    assert!(parse(b"a = [[1]]").is_err());
}

#[test]
fn nul_ends_text() {
    let c = parse(b"a = 1\n\0b = 2").unwrap();
    assert!(c.find("b").is_none());
    let c = parse(b"a = 1 # x\0\nb = 2").unwrap();
    assert!(c.find("b").is_none());
}

#[test]
fn duplicate_keys_disk_mode_first_wins() {
    let c = parse(b"a = 1\na = 2\ns { x = 1 }\ns { x = 2 y = 3 }\n").unwrap();
    assert_eq!(c.nodes().count(), 4);
    assert_eq!(val(&c, "a").items(), &[Scalar::Int(1)]);
    assert_eq!(val(&c, "s/x").items(), &[Scalar::Int(1)]);
    // The lookup descends into the first `s` only.
    assert!(c.find("s/y").is_none());
}

#[test]
fn duplicate_keys_file_mode_merge() {
    let c = parse_with(
        b"a = 1\na = 2\ns { x = 1 }\ns { x = 2 y = 3 }\n",
        ParseMode::File,
    )
    .unwrap();
    assert_eq!(c.nodes().count(), 2);
    assert_eq!(val(&c, "a").items(), &[Scalar::Int(2)]);
    assert_eq!(val(&c, "s/x").items(), &[Scalar::Int(2)]);
    assert_eq!(val(&c, "s/y").items(), &[Scalar::Int(3)]);
}

#[test]
fn file_mode_merges_large_sections() {
    // Past the size where a sibling index is used: same result as the linear rule.
    let mut t = String::from("s {\n");
    for i in 0..100 {
        t.push_str(&format!("k{i} = {i}\nsec{i} {{ a = {i} }}\n"));
    }
    t.push_str("}\ns {\n");
    for i in (0..100).rev() {
        t.push_str(&format!("k{i} = {}\nsec{i} {{ b = {i} }}\n", i + 1000));
    }
    t.push_str("s/k5 = 7\n}\n");
    let c = parse_with(t.as_bytes(), ParseMode::File).unwrap();
    assert_eq!(c.nodes().count(), 1);
    let s = c.nodes().next().unwrap();
    assert_eq!(s.children().count(), 201); // k0..k99, sec0..sec99, and the nested "s"
    assert_eq!(s.children().next().unwrap().key(), "k0");
    assert_eq!(s.get_int("k42"), Some(1042));
    assert_eq!(s.get_int("sec42/a"), Some(42));
    assert_eq!(s.get_int("sec42/b"), Some(42));
    assert_eq!(s.get_int("s/k5"), Some(7));
}

#[test]
fn slash_keys_are_paths() {
    let c = parse(b"a/b = 1\n\"c/d\" { e = 2 }\n").unwrap();
    assert_eq!(c.nodes().next().unwrap().key(), "a");
    assert_eq!(val(&c, "a/b").items(), &[Scalar::Int(1)]);
    assert_eq!(val(&c, "c/d/e").items(), &[Scalar::Int(2)]);
    // Trailing slash: a final empty component, as libdm makes it.
    let c = parse(b"x/ = 1").unwrap();
    assert_eq!(
        c.nodes().next().unwrap().children().next().unwrap().key(),
        ""
    );
}

#[test]
fn errors_have_positions() {
    let e = parse(b"vg {\n  a = 1\n  b 2\n}").unwrap_err();
    assert_eq!((e.line, e.col), (3, 5));
    assert!(matches!(e.kind, ParseErrorKind::Unexpected { .. }));
    let e = parse(b"vg {\n a = 1\n").unwrap_err();
    assert_eq!(e.line, 3);
    let e = parse(b"\"\" = 1").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::EmptyKey);
    let e = parse(b"a = }").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::ExpectedValue);
    assert!(parse(b"}").is_err());
    assert!(parse(b"a = \"x").is_ok()); // unterminated at EOF: libdm accepts it
}

#[test]
fn depth_limit() {
    let mut t = Vec::new();
    for _ in 0..100 {
        t.extend_from_slice(b"a {");
    }
    t.extend(std::iter::repeat_n(b'}', 100));
    let e = parse(&t).unwrap_err();
    assert!(matches!(e.kind, ParseErrorKind::TooDeep { .. }));
    let mut ok = Vec::new();
    for _ in 0..10 {
        ok.extend_from_slice(b"a {");
    }
    ok.extend(std::iter::repeat_n(b'}', 10));
    assert!(parse(&ok).is_ok());
    // Path keys nest too: 100 components in one key are as deep as 100 sections.
    let key = vec!["a"; 100].join("/");
    let e = parse(format!("{key} = 1").as_bytes()).unwrap_err();
    assert!(matches!(e.kind, ParseErrorKind::TooDeep { .. }));
    let key = vec!["a"; 30].join("/");
    let e = parse(format!("{key} {{ {key} {{ {key} = 1 }} }}").as_bytes()).unwrap_err();
    assert!(matches!(e.kind, ParseErrorKind::TooDeep { .. }));
    let key = vec!["a"; 60].join("/");
    let text = format!("{key} = 1");
    let c = parse(text.as_bytes()).unwrap();
    assert_eq!(parse(c.to_text(Layout::Disk).as_bytes()).unwrap(), c);
}

#[test]
fn empty_text() {
    assert!(parse(b"").unwrap().is_empty());
    assert!(parse(b"  # only a comment").unwrap().is_empty());
}

#[test]
fn printer_layouts() {
    let c = parse(b"vg { id = \"a\\\"b\" status = [\"READ\", \"WRITE\"] flags = [] seg { stripes = [\"pv0\", 0, \"pv1\", 5] } }\nversion = 1\n").unwrap();
    let disk = c.to_text(Layout::Disk);
    assert_eq!(
        disk,
        "vg {\nid = \"a\\\"b\"\nstatus = [\"READ\", \"WRITE\"]\nflags = []\nseg {\nstripes = [\n\"pv0\", 0,\n\"pv1\", 5\n]\n}\n}\nversion = 1\n"
    );
    let file = c.to_text(Layout::File);
    assert!(
        file.contains("\tseg {\n\t\tstripes = [\n\t\t\t\"pv0\", 0,\n"),
        "{file}"
    );
    assert_eq!(parse(disk.as_bytes()).unwrap(), c);
    assert_eq!(parse(file.as_bytes()).unwrap(), c);
}

//------------------------------------------------------------------------------------------
// Round trip

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_.+-]{0,8}",
        // Keys that need quoting: spaces, quotes, backslashes, '#', non-ASCII.
        "[a-z #\"\\\\=é{}']{1,6}",
    ]
    .prop_filter("no '/' (paths) and not empty", |k| {
        !k.contains('/') && !k.is_empty()
    })
}

fn scalar() -> impl Strategy<Value = Scalar<'static>> {
    prop_oneof![
        any::<i64>().prop_map(Scalar::Int),
        (-1e12f64..1e12).prop_map(Scalar::Float),
        "[^\\x00]{0,12}".prop_map(|s| Scalar::Str(Cow::Owned(s))),
    ]
}

fn value() -> impl Strategy<Value = NewValue<'static>> {
    prop_oneof![
        scalar().prop_map(NewValue::Scalar),
        proptest::collection::vec(scalar(), 0..5).prop_map(NewValue::Array),
    ]
}

/// An owned tree, turned into a [`Config`] through the builder API.
#[derive(Clone, Debug)]
enum Tree {
    Value(String, NewValue<'static>),
    Section(String, Vec<Tree>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = (key(), value()).prop_map(|(k, v)| Tree::Value(k, v));
    leaf.prop_recursive(4, 40, 6, |inner| {
        (key(), proptest::collection::vec(inner, 0..6)).prop_map(|(k, c)| Tree::Section(k, c))
    })
}

fn build(cfg: &mut Config<'static>, parent: Option<NodeId>, t: &Tree) {
    match t {
        Tree::Value(k, v) => {
            cfg.add_value(parent, k.clone(), v.clone());
        }
        Tree::Section(k, children) => {
            let id = cfg.add_section(parent, k.clone());
            for c in children {
                build(cfg, Some(id), c);
            }
        }
    }
}

proptest! {
    #[test]
    fn print_parse_round_trip(trees in proptest::collection::vec(tree(), 0..6), file in any::<bool>()) {
        let mut c = Config::new();
        for t in &trees {
            build(&mut c, None, t);
        }
        let layout = if file { Layout::File } else { Layout::Disk };
        let text = c.to_text(layout);
        let back = parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, c);
    }

    #[test]
    fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse(&data);
        let _ = parse_with(&data, ParseMode::File);
    }

    #[test]
    fn parser_never_panics_on_token_soup(parts in proptest::collection::vec(
        prop_oneof![Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just("="), Just("\""), Just("'"),
                    Just("a"), Just("-"), Just("."), Just("0x"), Just("9"), Just("#"), Just("\n"), Just(" "), Just("\\"), Just("/")],
        0..60)) {
        let t: String = parts.concat();
        let _ = parse(t.as_bytes());
        let _ = parse_with(t.as_bytes(), ParseMode::File);
    }
}
