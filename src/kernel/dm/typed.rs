//! Typed table load/read helpers on [`DeviceMapper`].

use super::commands;
use super::{DeviceInfo, DeviceMapper, LoadOptions, StatusFlush, Which};
use crate::kernel::error::Result;
use crate::kernel::id::DevId;
use crate::kernel::reply::RawTarget;
use crate::table::{StatusLine, Table, TableLine};

impl From<&TableLine> for RawTarget {
    fn from(l: &TableLine) -> Self {
        let (start, length, target_type, params) = l.to_raw();
        RawTarget {
            start,
            length,
            target_type: target_type.to_owned(),
            params,
        }
    }
}

impl DeviceMapper {
    /// `DM_TABLE_LOAD` of a typed table, validated first ([`Table::validate`]), then sent
    /// as the kernel prints it back (the canonical params of each target).
    ///
    /// # Errors
    /// [`Error::Table`](crate::Error::Table) for a table the kernel would refuse; otherwise
    /// as [`DeviceMapper::load_raw`].
    pub fn load<'a>(
        &self,
        id: impl Into<DevId<'a>>,
        table: &Table,
        opts: LoadOptions,
    ) -> Result<DeviceInfo> {
        table.validate()?;
        let targets: Vec<RawTarget> = table.lines().iter().map(RawTarget::from).collect();
        self.run(&commands::Load {
            id: id.into(),
            targets: &targets,
            opts,
        })
    }

    /// The table as typed targets; text this crate does not model is kept as
    /// [`Target::Opaque`](crate::targets::Target::Opaque).
    ///
    /// # Errors
    /// As [`DeviceMapper::table_raw`].
    pub fn table<'a>(&self, id: impl Into<DevId<'a>>, which: Which) -> Result<Table> {
        let lines = self
            .table_raw(id, which)?
            .iter()
            .map(|r| TableLine::from_raw_lenient(r.start, r.length, &r.target_type, &r.params))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Table::from_lines(lines))
    }

    /// Each target's status, typed.
    ///
    /// # Errors
    /// As [`DeviceMapper::status_raw`], or [`Error::Table`](crate::Error::Table) for status text
    /// of a known target type that does not parse.
    pub fn status<'a>(
        &self,
        id: impl Into<DevId<'a>>,
        which: Which,
        flush: StatusFlush,
    ) -> Result<Vec<StatusLine>> {
        Ok(self
            .status_raw(id, which, flush)?
            .iter()
            .map(|r| StatusLine::from_raw(r.start, r.length, &r.target_type, &r.params))
            .collect::<std::result::Result<Vec<_>, _>>()?)
    }
}
