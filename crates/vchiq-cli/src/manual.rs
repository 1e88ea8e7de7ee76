//! `vchiq man` and `vchiq completions`: manual pages and shell completions generated from
//! the clap definitions, so they never disagree with `--help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

/// Options of `vchiq man`.
#[derive(Args, Debug)]
#[command(after_long_help = "\
Writes vchiq.1, one vchiq-COMMAND.1 per command (vchiq-bench-ping.1 for the commands of \
`vchiq bench`), and vcgencmd.1, vcdbg.1 and vchiq_test.1, which point to the pages of \
the commands they are (roff `.so`). Hidden internal commands get no page.

Example:
  vchiq man --dir /usr/share/man/man1 && man vchiq-status")]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing), e.g.
    /// /usr/share/man/man1.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

/// The shells `vchiq completions` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash (bash-completion: /usr/share/bash-completion/completions/vchiq).
    Bash,
    /// zsh (a `_vchiq` file in a directory of $fpath).
    Zsh,
    /// fish (~/.config/fish/completions/vchiq.fish).
    Fish,
}

/// Options of `vchiq completions`.
#[derive(Args, Debug)]
#[command(after_long_help = "\
Examples:
  vchiq completions bash > /usr/share/bash-completion/completions/vchiq
  vchiq completions zsh > \"${fpath[1]}/_vchiq\"
  vchiq completions fish > ~/.config/fish/completions/vchiq.fish
  source <(vchiq completions bash)      # this shell only")]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

/// The Raspberry Pi tool names `vchiq` answers to, and the command each one is.
pub const ALIASES: [(&str, &str); 3] = [
    ("vcgencmd", "gencmd"),
    ("vcdbg", "log"),
    ("vchiq_test", "test"),
];

/// `vchiq man`.
pub fn man(a: ManArgs, cmd: clap::Command) -> Result<ExitCode> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let written = write_pages(cmd, &a.dir)?;
    eprintln!(
        "wrote {} manual pages to {}",
        written.len(),
        a.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the pages and returns their paths.
fn write_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    // clap_mangen skips hidden commands and names subcommand pages `vchiq-sub`.
    clap_mangen::generate_to(cmd.clone(), dir)
        .with_context(|| format!("writing manual pages to {}", dir.display()))?;
    for (alias, sub) in ALIASES {
        let path = dir.join(format!("{alias}.1"));
        std::fs::write(&path, format!(".so man1/{}-{sub}.1\n", cmd.get_name()))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}

/// `vchiq completions SHELL`: the script on stdout.
pub fn completions(a: CompletionsArgs, mut cmd: clap::Command) -> Result<ExitCode> {
    let shell = match a.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
