//! `vaultkeeper render -f FILE [--namespace NS]`.

use std::io::Read;
use std::path::PathBuf;

use time::OffsetDateTime;
use vaultkeeper_api::{TlsMode, parse_manifests, validate};
use vaultkeeper_render::{RenderContext, pki, render, to_yaml_stream};

use crate::CliError;

/// Arguments of `vaultkeeper render`.
#[derive(clap::Args)]
pub struct RenderArgs {
    /// The VaultCluster manifest (YAML, one or more documents); `-` reads stdin.
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// Namespace of the rendered objects. Default: the manifest's, else `default`.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The vaultkeeper image the backup and metrics-token CronJobs run.
    #[arg(long, default_value = vaultkeeper_render::DEFAULT_OPERATOR_IMAGE)]
    operator_image: String,
}

/// Reads, validates and renders; prints multi-document YAML on stdout.
pub fn run(args: &RenderArgs) -> Result<(), CliError> {
    let text = read_input(args)?;
    let clusters = parse_manifests(&text)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.file.display())))?;
    let mut output = String::new();
    for cluster in clusters {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        validate(&cluster).map_err(|invalid| {
            let lines: Vec<String> = invalid
                .violations
                .iter()
                .map(|v| format!("  {}: {}", v.field, v.message))
                .collect();
            CliError::Input(format!(
                "VaultCluster {name:?} is invalid:\n{}",
                lines.join("\n")
            ))
        })?;
        let namespace = args
            .namespace
            .clone()
            .or_else(|| cluster.metadata.namespace.clone())
            .unwrap_or_else(|| "default".to_owned());
        let material = if cluster.spec.tls.mode == TlsMode::SelfSigned {
            Some(
                pki::issue_new(&cluster, &namespace, OffsetDateTime::now_utc())
                    .map_err(|e| CliError::Internal(e.to_string()))?,
            )
        } else {
            None
        };
        let mut ctx = RenderContext::new(&namespace, material.as_ref());
        ctx.operator_image = &args.operator_image;
        let manifests = render(&cluster, &ctx).map_err(|e| CliError::Input(e.to_string()))?;
        output
            .push_str(&to_yaml_stream(&manifests).map_err(|e| CliError::Internal(e.to_string()))?);
    }
    print!("{output}");
    Ok(())
}

fn read_input(args: &RenderArgs) -> Result<String, CliError> {
    if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Input(format!("cannot read stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", args.file.display())))
}
