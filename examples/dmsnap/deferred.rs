//! Subcommand groups whose clap definitions are built only when the command line enters
//! them ([`Deferred`]).
//!
//! clap builds the definition of every subcommand and argument before it parses anything.
//! That is little work on hardware, but it is code run once, and under an emulator
//! (qemu without KVM, where the benchmarks run) each first run of code is translated:
//! building the whole tree cost 70 ms of a 130 ms `dmsnap --version`. With the groups
//! deferred (`clap::Command::defer`), `dmsnap ls` builds none of the `lvm` and `cow`
//! subcommands and `dmsnap lvm lvcreate` none of the `cow` ones. Help, errors and
//! completions are unchanged: clap builds a deferred group whenever it looks inside.

use clap::{ArgMatches, Args, Command, FromArgMatches, Subcommand};

/// A subcommand group `T` (a `Subcommand`) whose subcommands, or a subcommand's
/// arguments `T` (an `Args`), are added to its `Command` only when clap needs them (the
/// command line enters it, or its help is shown).
#[derive(Debug)]
pub struct Deferred<T>(pub T);

impl<T: FromArgMatches> FromArgMatches for Deferred<T> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(m).map(Deferred)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
}

/// `T`'s subcommands added to `cmd`, keeping the help text the parent's variant gave
/// `cmd`: clap applies the variant's doc comment after the group's own, so run directly
/// the variant's wins, and must still win when the group is added later.
fn augment<T: Subcommand>(cmd: Command) -> Command {
    keep_about(cmd, T::augment_subcommands)
}

fn augment_for_update<T: Subcommand>(cmd: Command) -> Command {
    keep_about(cmd, T::augment_subcommands_for_update)
}

fn keep_about(cmd: Command, add: fn(Command) -> Command) -> Command {
    let about = cmd.get_about().cloned();
    let long_about = cmd.get_long_about().cloned();
    let mut cmd = add(cmd);
    if let Some(a) = about {
        cmd = cmd.about(a);
    }
    if let Some(a) = long_about {
        cmd = cmd.long_about(a);
    }
    cmd
}

impl<T: Subcommand> Subcommand for Deferred<T> {
    fn augment_subcommands(cmd: Command) -> Command {
        cmd.defer(augment::<T>)
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        cmd.defer(augment_for_update::<T>)
    }

    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}

fn args<T: Args>(cmd: Command) -> Command {
    keep_about(cmd, T::augment_args)
}

fn args_for_update<T: Args>(cmd: Command) -> Command {
    keep_about(cmd, T::augment_args_for_update)
}

impl<T: Args> Args for Deferred<T> {
    fn augment_args(cmd: Command) -> Command {
        cmd.defer(args::<T>)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        cmd.defer(args_for_update::<T>)
    }

    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}
