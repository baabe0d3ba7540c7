//! The `master-guide` command: serve (default), migrate, seed, schema, reconcile, grant-admin, reindex.

use clap::{Parser, Subcommand};
use master_guide::{config::Config, db, domain, graphql, telemetry, Application};
use migration::{Migrator, MigratorTrait};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the server allocates many small, short-lived values on every
/// worker thread (GraphQL values, rows, futures), where glibc's arenas contend (bench/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "master-guide", version, about = "GraphQL API server of the Master Guide mentoring community")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Load the small demo data set (logins in the README; running it twice changes nothing), or
    /// with `--scale small|medium|large|search` a benchmark data set (refused on a database with users unless
    /// `--force`, which wipes it first).
    Seed {
        #[arg(long)]
        scale: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// Print the GraphQL schema (SDL); `> schema.graphql` refreshes the snapshot.
    Schema,
    /// Check every denormalized counter against the rows it counts; `--repair` fixes drifted rows.
    /// Exits 1 when drift was found and not repaired.
    Reconcile {
        #[arg(long)]
        repair: bool,
    },
    /// Make an existing user a platform administrator.
    GrantAdmin { email: String },
    /// Rebuild the search index from the database (with the server stopped: the embedded index
    /// has one writer).
    Reindex,
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Roll back migrations (the last one, or `-n N`).
    Down {
        #[arg(short = 'n', long, default_value_t = 1)]
        steps: u32,
    },
    /// Drop everything and migrate from scratch.
    Fresh,
    /// Show applied and pending migrations.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_tracing(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = ?error, "fatal");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(config).await?;
            tracing::info!(addr = %app.local_addr()?, "serving GraphQL at /graphql, GraphiQL at /");
            app.run_until_stopped().await
        }
        Command::Migrate { action } => {
            let (conn, _) = db::connect(&config.database).await?;
            match action {
                MigrateAction::Up => Migrator::up(&conn, None).await?,
                MigrateAction::Down { steps } => Migrator::down(&conn, Some(steps)).await?,
                MigrateAction::Fresh => Migrator::fresh(&conn).await?,
                MigrateAction::Status => Migrator::status(&conn).await?,
            }
            Ok(())
        }
        Command::Seed { .. } if config.environment == master_guide::config::Environment::Production => {
            // Demo accounts with a published password, or a benchmark set, never in production.
            anyhow::bail!("seed refuses to run with APP_ENV=production (with or without --force)")
        }
        Command::Seed { scale: Some(scale), force } => {
            let scale = master_guide::datagen::Scale::parse(&scale)?;
            let (conn, _) = db::connect(&config.database).await?;
            db::migrate(&conn).await?;
            let report = master_guide::datagen::run(&conn, scale, force).await?;
            println!(
                "loaded {} rows in {:.0} s ({:.0} rows/s); every bench user's password is '{}'",
                report.rows,
                report.seconds,
                report.rows as f64 / report.seconds.max(0.001),
                master_guide::datagen::BENCH_PASSWORD
            );
            Ok(())
        }
        Command::Seed { scale: None, .. } => {
            let (conn, _) = db::connect(&config.database).await?;
            db::migrate(&conn).await?;
            let report = domain::seed::demo(&conn).await.map_err(|e| anyhow::anyhow!(e.message()))?;
            if report.created {
                println!(
                    "seeded {} demo users; sign in as {} with password '{}'",
                    report.users,
                    domain::seed::ADMIN_EMAIL,
                    domain::seed::DEMO_PASSWORD
                );
            } else {
                println!("demo data already present; nothing changed");
            }
            Ok(())
        }
        Command::GrantAdmin { email } => {
            let (conn, _) = db::connect(&config.database).await?;
            db::migrate(&conn).await?;
            let user = domain::accounts::grant_admin(&conn, &email).await.map_err(|e| anyhow::anyhow!(e.message()))?;
            println!("{} is now an admin", user.email);
            Ok(())
        }
        Command::Reconcile { repair } => {
            let (conn, _) = db::connect(&config.database).await?;
            let findings = domain::reconcile::run(&conn, repair).await.map_err(|e| anyhow::anyhow!(e.message()))?;
            let mut unrepaired = 0;
            for finding in &findings {
                println!(
                    "{:<28} drifted rows: {:>6}   repaired: {:>6}",
                    finding.counter, finding.drifted, finding.repaired
                );
                unrepaired += finding.drifted - finding.repaired as i64;
            }
            if unrepaired > 0 {
                anyhow::bail!("{unrepaired} rows drifted; run with --repair to fix them");
            }
            Ok(())
        }
        Command::Reindex => {
            let (conn, _) = db::connect(&config.database).await?;
            db::migrate(&conn).await?;
            let bars = indicatif::MultiProgress::new();
            let style =
                indicatif::ProgressStyle::with_template("{prefix:>8} {spinner} {human_pos} documents {per_sec}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            let bar_of = |collection: master_guide::search::Collection| {
                let bar = bars.add(indicatif::ProgressBar::new_spinner().with_style(style.clone()));
                bar.set_prefix(collection.name());
                bar
            };
            let progress: Vec<_> = master_guide::search::Collection::ALL.iter().map(|c| (*c, bar_of(*c))).collect();
            let started = std::time::Instant::now();
            master_guide::search::Search::reindex(config.search.clone(), conn, &|collection, n| {
                if let Some((_, bar)) = progress.iter().find(|(c, _)| *c == collection) {
                    bar.set_position(n as u64);
                }
            })
            .await?;
            for (_, bar) in &progress {
                bar.finish();
            }
            println!("search index rebuilt in {:.1} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Schema => Ok(()),
    }
}
