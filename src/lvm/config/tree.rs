//! The tree: an arena of nodes ([`Config`]) read through [`Node`] handles, with the
//! scalar and value types it holds.

use std::borrow::Cow;

/// One value item.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar<'a> {
    /// An integer.
    Int(i64),
    /// A float (a number token containing `.`).
    Float(f64),
    /// A string (quoted or bare).
    Str(Cow<'a, str>),
}

/// A node's value, borrowed from its [`Config`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'c, 'a> {
    /// A single item.
    Scalar(&'c Scalar<'a>),
    /// `[ ... ]`, possibly empty.
    Array(&'c [Scalar<'a>]),
}

impl<'c, 'a> Value<'c, 'a> {
    /// The items: one for a scalar, all for an array (libdm does not tell them apart).
    pub fn items(&self) -> &'c [Scalar<'a>] {
        match *self {
            Value::Scalar(s) => std::slice::from_ref(s),
            Value::Array(v) => v,
        }
    }
}

/// A value to add with [`Config::add_value`].
#[derive(Clone, Debug, PartialEq)]
pub enum NewValue<'a> {
    /// A single item.
    Scalar(Scalar<'a>),
    /// An array.
    Array(Vec<Scalar<'a>>),
}

/// Where a node's value is in [`Config`]'s item vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Val {
    None,
    Scalar(u32),
    Array(u32, u32),
}

/// Arena slot of one node; children form a first-child / next-sibling list (0 = none;
/// slot 0 is the root, never anyone's child).
#[derive(Clone, Debug)]
pub(super) struct Slot<'a> {
    pub(super) key: Cow<'a, str>,
    pub(super) value: Val,
    pub(super) first: u32,
    pub(super) last: u32,
    pub(super) next: u32,
}

/// Identifies a node of a [`Config`] (for building one with [`Config::add_section`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(u32);

/// A parsed text: an arena of nodes (keys with a value or children) in file order.
///
/// Nodes are read through [`Node`] handles: [`Config::nodes`] for the top level,
/// [`Config::find`] for a path. Equality is structural.
#[derive(Clone)]
pub struct Config<'a> {
    pub(super) slots: Vec<Slot<'a>>,
    pub(super) items: Vec<Scalar<'a>>,
}

impl Default for Config<'_> {
    fn default() -> Self {
        Config::new()
    }
}

impl std::fmt::Debug for Config<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.nodes()).finish()
    }
}

impl PartialEq for Config<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.nodes().eq(other.nodes())
    }
}

/// A node of a [`Config`]: a key with either a value or children (a section). Like libdm's
/// `dm_config_node`, a merged file can give one node both; it then counts as a value.
#[derive(Clone, Copy)]
pub struct Node<'c, 'a> {
    cfg: &'c Config<'a>,
    pub(super) id: u32,
}

impl std::fmt::Debug for Node<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Node");
        d.field("key", &self.key());
        if let Some(v) = self.value() {
            d.field("value", &v);
        }
        if self.children().next().is_some() {
            d.field("children", &self.children().collect::<Vec<_>>());
        }
        d.finish()
    }
}

impl PartialEq for Node<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
            && self.value().map(|v| v.items()) == other.value().map(|v| v.items())
            && matches!(self.value(), Some(Value::Array(_)))
                == matches!(other.value(), Some(Value::Array(_)))
            && self.children().eq(other.children())
    }
}

/// Iterator over the children of a node (or the top level of a [`Config`]).
#[derive(Clone, Debug)]
pub struct Children<'c, 'a> {
    pub(super) cfg: &'c Config<'a>,
    pub(super) next: u32,
}

impl<'c, 'a> Iterator for Children<'c, 'a> {
    type Item = Node<'c, 'a>;

    fn next(&mut self) -> Option<Node<'c, 'a>> {
        if self.next == 0 {
            return None;
        }
        let id = self.next;
        self.next = self.cfg.slot(id).map_or(0, |s| s.next);
        Some(Node { cfg: self.cfg, id })
    }
}

/// The arena slot of the (keyless) root.
pub(super) const ROOT: u32 = 0;

impl<'a> Config<'a> {
    /// An empty config.
    pub fn new() -> Config<'a> {
        Config {
            slots: vec![Slot {
                key: Cow::Borrowed(""),
                value: Val::None,
                first: 0,
                last: 0,
                next: 0,
            }],
            items: Vec::new(),
        }
    }

    pub(super) fn slot(&self, id: u32) -> Option<&Slot<'a>> {
        self.slots.get(id as usize)
    }

    /// The top-level nodes, in order.
    pub fn nodes(&self) -> Children<'_, 'a> {
        Children {
            cfg: self,
            next: self.slot(ROOT).map_or(0, |s| s.first),
        }
    }

    /// No top-level node.
    pub fn is_empty(&self) -> bool {
        self.nodes().next().is_none()
    }

    /// The first node at `path` (`/`-separated), as libdm's lookups find it.
    pub fn find(&self, path: &str) -> Option<Node<'_, 'a>> {
        find_in(self.nodes(), path)
    }

    /// Append a section under `parent` (`None`: top level).
    pub fn add_section(&mut self, parent: Option<NodeId>, key: impl Into<Cow<'a, str>>) -> NodeId {
        NodeId(self.push(parent.map_or(ROOT, |p| p.0), key.into()))
    }

    /// Append a `key = value` node under `parent` (`None`: top level).
    pub fn add_value(
        &mut self,
        parent: Option<NodeId>,
        key: impl Into<Cow<'a, str>>,
        value: NewValue<'a>,
    ) -> NodeId {
        let id = self.push(parent.map_or(ROOT, |p| p.0), key.into());
        let v = match value {
            NewValue::Scalar(s) => self.push_items(std::iter::once(s), false),
            NewValue::Array(a) => self.push_items(a, true),
        };
        self.set_value(id, v);
        NodeId(id)
    }

    pub(super) fn push_items(
        &mut self,
        items: impl IntoIterator<Item = Scalar<'a>>,
        array: bool,
    ) -> Val {
        let start = self.items.len();
        self.items.extend(items);
        let start32 = u32::try_from(start).unwrap_or(u32::MAX);
        let len32 = u32::try_from(self.items.len() - start).unwrap_or(u32::MAX);
        if array {
            Val::Array(start32, len32)
        } else {
            Val::Scalar(start32)
        }
    }

    pub(super) fn set_value(&mut self, id: u32, v: Val) {
        if let Some(s) = self.slots.get_mut(id as usize) {
            s.value = v;
        }
    }

    /// Append a node as the last child of `parent`; returns its id.
    pub(super) fn push(&mut self, parent: u32, key: Cow<'a, str>) -> u32 {
        let id = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            key,
            value: Val::None,
            first: 0,
            last: 0,
            next: 0,
        });
        let last = match self.slots.get_mut(parent as usize) {
            Some(p) => {
                let last = p.last;
                if p.first == 0 {
                    p.first = id;
                }
                p.last = id;
                last
            }
            None => 0,
        };
        if last != 0
            && let Some(l) = self.slots.get_mut(last as usize)
        {
            l.next = id;
        }
        id
    }

    /// A copy that owns all its strings.
    pub fn into_owned(self) -> Config<'static> {
        Config {
            slots: self
                .slots
                .into_iter()
                .map(|s| Slot {
                    key: Cow::Owned(s.key.into_owned()),
                    value: s.value,
                    first: s.first,
                    last: s.last,
                    next: s.next,
                })
                .collect(),
            items: self.items.into_iter().map(scalar_owned).collect(),
        }
    }
}

fn find_in<'c, 'a>(mut nodes: Children<'c, 'a>, path: &str) -> Option<Node<'c, 'a>> {
    let mut rest = path;
    loop {
        // Byte loops: paths are a few bytes long, where `str::find(char)`'s set-up costs
        // more than the search (this runs for every key the importer reads).
        let lead = rest.bytes().take_while(|&b| b == b'/').count();
        rest = &rest[lead..];
        let (seg, tail) = match rest.bytes().position(|b| b == b'/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let n = nodes.find(|n| n.key() == seg)?;
        if tail.is_empty() {
            return Some(n);
        }
        nodes = n.children();
        rest = tail;
    }
}

impl<'c, 'a> Node<'c, 'a> {
    fn slot(&self) -> Option<&'c Slot<'a>> {
        self.cfg.slot(self.id)
    }

    /// This node's id (to add children with [`Config::add_section`]).
    pub fn id(&self) -> NodeId {
        NodeId(self.id)
    }

    /// The key (one path component).
    pub fn key(&self) -> &'c str {
        self.slot().map_or("", |s| &s.key)
    }

    /// The value, `None` for a section.
    pub fn value(&self) -> Option<Value<'c, 'a>> {
        match self.slot()?.value {
            Val::None => None,
            Val::Scalar(i) => self.cfg.items.get(i as usize).map(Value::Scalar),
            Val::Array(start, len) => {
                let (start, len) = (start as usize, len as usize);
                self.cfg.items.get(start..start + len).map(Value::Array)
            }
        }
    }

    /// The children, in order.
    pub fn children(&self) -> Children<'c, 'a> {
        Children {
            cfg: self.cfg,
            next: self.slot().map_or(0, |s| s.first),
        }
    }

    /// Is this a section (no value)?
    pub fn is_section(&self) -> bool {
        self.slot().is_some_and(|s| s.value == Val::None)
    }

    /// The first descendant at `path`.
    pub fn find(&self, path: &str) -> Option<Node<'c, 'a>> {
        find_in(self.children(), path)
    }

    /// The value items at `path` (a scalar counts as a one-item list).
    pub fn get_list(&self, path: &str) -> Option<&'c [Scalar<'a>]> {
        self.find(path)?.value().map(|v| v.items())
    }

    /// The string at `path` (the first item when it is an array, like `dm_config_get_str`).
    pub fn get_str(&self, path: &str) -> Option<&'c str> {
        match self.get_list(path)?.first()? {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer at `path` (the first item when it is an array).
    pub fn get_int(&self, path: &str) -> Option<i64> {
        match self.get_list(path)?.first()? {
            Scalar::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The child sections, in order.
    pub fn sections(&self) -> impl Iterator<Item = Node<'c, 'a>> + use<'c, 'a> {
        self.children().filter(|n| n.is_section())
    }
}

fn scalar_owned(s: Scalar<'_>) -> Scalar<'static> {
    match s {
        Scalar::Int(i) => Scalar::Int(i),
        Scalar::Float(f) => Scalar::Float(f),
        Scalar::Str(s) => Scalar::Str(Cow::Owned(s.into_owned())),
    }
}
