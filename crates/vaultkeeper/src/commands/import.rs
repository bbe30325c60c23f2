//! `vaultkeeper import --from-helm-values FILE [--release NAME] [--namespace NS]`: the
//! VaultCluster equivalent to a Vault Helm chart install, on stdout; every value that
//! could not be carried over, with why, on stderr. The conversion itself is
//! [`crate::helm_values`]; this is reading the file and printing.

use std::io::Read;
use std::path::PathBuf;

use crate::CliError;
use crate::helm_values::{ImportOptions, import, parse_values, to_manifest_yaml};

/// Arguments of `vaultkeeper import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// A values file of the Vault Helm chart (what you pass to `helm install -f`); `-`
    /// reads stdin. It is merged over the chart's defaults as Helm merges it.
    #[arg(long = "from-helm-values", value_name = "FILE")]
    values: PathBuf,
    /// The Helm release name. The VaultCluster is named as the chart names its objects:
    /// the release name when it contains "vault", else `<release>-vault`.
    #[arg(long, default_value = "vault")]
    release: String,
    /// Namespace of the VaultCluster. Default: the values' global.namespace, else none.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

/// Reads, converts and prints. Exit 0 when converted (even with values left over), 2 when
/// the file is not a Vault values file, 1 when it cannot be read.
pub fn run(args: &ImportArgs) -> Result<(), CliError> {
    let text = read_input(&args.values)?;
    let source = args.values.display().to_string();
    let values = parse_values(&text).map_err(|e| CliError::Input(format!("{source}: {e}")))?;
    let imported = import(
        &values,
        &ImportOptions {
            release: args.release.clone(),
            namespace: args.namespace.clone(),
        },
    )
    .map_err(|e| CliError::Input(format!("{source}: {e}")))?;
    let yaml = to_manifest_yaml(&imported, &source)
        .map_err(|e| CliError::Internal(format!("cannot write the VaultCluster: {e}")))?;
    print!("{yaml}");
    let mut report = String::new();
    if imported.leftovers.is_empty() {
        report.push_str("every value was carried over\n");
    } else {
        report.push_str(&format!(
            "{} value{} not carried over:\n",
            imported.leftovers.len(),
            if imported.leftovers.len() == 1 {
                ""
            } else {
                "s"
            }
        ));
        for leftover in &imported.leftovers {
            report.push_str(&format!("  {leftover}\n"));
        }
    }
    for note in &imported.notes {
        report.push_str(&format!("note: {note}\n"));
    }
    eprint!("{report}");
    Ok(())
}

fn read_input(path: &PathBuf) -> Result<String, CliError> {
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    read.map_err(|e| CliError::Internal(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|_| {
        CliError::Input(format!(
            "{}: not a values file: it is not UTF-8 text",
            path.display()
        ))
    })
}
