//! The `heliograph` command: serve, migrate, create users and tokens.
//!
//! A thin shell over the library crates: it reads configuration from the environment (and a
//! `.env` file), sets up logging, and calls the store and the web application.

#![deny(unsafe_code)]

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use heliograph_domain::{DisplayName, Password, Role, TimeZone, TokenName, UserEmail};
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, DEFAULT_DATABASE_URL, Db, Store};
use heliograph_web::{Application, Config};

/// Heliograph: incident management and on-call for teams that run production AI systems.
///
/// Configuration comes from environment variables (a `.env` file in the working directory
/// adds to them); each option below names its variable.
#[derive(Parser)]
#[command(name = "heliograph", version, about, long_about)]
struct Cli {
    /// The database: `sqlite://path/to/file.db` (created if missing) or `postgres://user@host/db`.
    #[arg(long, global = true, env = "HELIOGRAPH_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,

    /// Connections each process opens to PostgreSQL at most. About twice the database
    /// server's cores is plenty: more connections only take turns on its cores.
    #[arg(long, global = true, env = "HELIOGRAPH_DATABASE_POOL", default_value_t = heliograph_store::DEFAULT_POSTGRES_POOL,
          value_parser = clap::value_parser!(u32).range(2..=1000))]
    database_pool: u32,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run migrations, then serve the web app, the API and the background engine.
    Serve(ServeArgs),
    /// Run the database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Load a demo organisation (three regions, AI services, schedules, policies, a year of
    /// incidents, pages and postmortems) into an empty database, then print how to sign in.
    Demo(DemoArgs),
}

#[derive(Args)]
struct DemoArgs {
    /// Seed of the random generator: the same seed gives the same organisation.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Incidents over the year of history.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    incidents: u32,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HELIOGRAPH_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Public URL of this installation, used in links in emails and calendars
    /// (default: http:// + the bind address).
    #[arg(long, env = "HELIOGRAPH_BASE_URL")]
    base_url: Option<url::Url>,
    /// SMTP server for email, e.g. smtp://127.0.0.1:2525 or smtps://user:pass@host:465.
    /// Unset: email is recorded as not sent, with the reason.
    #[arg(long, env = "HELIOGRAPH_SMTP_URL")]
    smtp_url: Option<url::Url>,
    /// The From header of outgoing email.
    #[arg(
        long,
        env = "HELIOGRAPH_SMTP_FROM",
        default_value = "Heliograph <heliograph@localhost>"
    )]
    smtp_from: String,
    /// Alert events per second each integration key may send; more get 429 with Retry-After.
    #[arg(long, env = "HELIOGRAPH_INGEST_RATE", default_value_t = heliograph_web::ingest::RATE_PER_SECOND)]
    ingest_rate: f64,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; prints the new user's id on the last line.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// admin, manager, responder or viewer.
        #[arg(long)]
        role: String,
        /// IANA time zone, e.g. Europe/London.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Read the password from the first line of standard input. Without it the account
        /// cannot sign in to the web app until an admin sets a password.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user; prints the token alone on the last line.
    Create {
        /// The user the token acts as.
        #[arg(long)]
        email: String,
        /// A label for the token, e.g. the script that uses it.
        #[arg(long)]
        name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let db = Db::connect_pooled(&cli.database_url, cli.database_pool)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&cli.database_url)))?;
    db.migrate().await.context("cannot migrate the database")?;
    let store = Store::new(db);

    match cli.command {
        Command::Migrate => {
            println!("migrations applied");
            Ok(())
        }
        Command::Serve(args) => serve(store, args).await,
        Command::Demo(args) => demo(store, args).await,
        Command::User(UserCommand::Create {
            email,
            name,
            role,
            time_zone,
            password_stdin,
        }) => {
            let email = UserEmail::parse(&email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            let name = DisplayName::parse(&name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            let time_zone =
                TimeZone::parse(&time_zone).map_err(|e| anyhow::anyhow!("--time-zone: {e}"))?;
            let password_hash = if password_stdin {
                let stdin = std::io::stdin();
                if stdin.is_terminal() {
                    eprintln!(
                        "Password (at least {} characters), then Enter:",
                        Password::MIN_CHARS
                    );
                }
                let mut line = String::new();
                stdin
                    .lock()
                    .read_line(&mut line)
                    .context("cannot read the password from standard input")?;
                let password = Password::parse(line.trim_end_matches(['\r', '\n']))
                    .map_err(|e| anyhow::anyhow!("password: {e}"))?;
                Some(
                    heliograph_web::auth::hash_password(password)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?,
                )
            } else {
                eprintln!(
                    "note: no --password-stdin, so this account cannot sign in until an admin sets a password"
                );
                None
            };
            let user = store
                .create_user(
                    &NewUser {
                        email,
                        name,
                        time_zone,
                        role,
                        password_hash,
                    },
                    &Audit::cli(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the user: {e}"))?;
            eprintln!(
                "created {} ({}, {}, {})",
                user.name, user.email, user.role, user.time_zone
            );
            println!("{}", user.id);
            Ok(())
        }
        Command::Token(TokenCommand::Create { email, name }) => {
            let email = UserEmail::parse(&email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            let name = TokenName::parse(&name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
            let Some(user) = store.user_by_email(&email).await? else {
                bail!("there is no user with the email {email}");
            };
            let token = heliograph_web::auth::new_api_token();
            store
                .create_token(
                    user.id,
                    &name,
                    &heliograph_web::auth::hash_secret(&token),
                    &heliograph_web::auth::token_prefix(&token),
                    &Audit::cli(),
                )
                .await?;
            eprintln!("API token \"{name}\" for {email} (shown once; store it safely):");
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(store: Store, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.smtp_url
        && !matches!(url.scheme(), "smtp" | "smtps")
    {
        bail!(
            "HELIOGRAPH_SMTP_URL must start with smtp:// or smtps://, not {}://",
            url.scheme()
        );
    }
    let config = Config {
        bind: args.bind,
        base_url: args.base_url,
        smtp_url: args.smtp_url,
        smtp_from: args.smtp_from,
        run_engine: true,
        ingest_rate: args.ingest_rate,
    };
    let app = Application::build(config, store)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    tracing::info!(address = %app.local_addr()?, base_url = %app.base_url(), "Heliograph is serving");
    println!("Heliograph is running at {}", app.base_url());
    if let Some(url) = app.setup_url() {
        println!();
        println!("No users yet. Create the first admin at this one-time link:");
        println!();
        println!("    {url}");
        println!();
    }
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn demo(store: Store, args: DemoArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    eprintln!("Loading the demo organisation…");
    let options = heliograph_web::demo::DemoOptions {
        seed: args.seed,
        incidents: args.incidents as usize,
        ..Default::default()
    };
    let summary = heliograph_web::demo::load(&store, &options).await?;
    println!(
        "Loaded in {:.1} s: {} people, {} services, 2 schedules, {} escalation policies, {} incidents, {} alerts, {} pages, {} response-target breaches, {} postmortems with {} action items.",
        started.elapsed().as_secs_f64(),
        summary.people,
        summary.services.len(),
        summary.policies.len(),
        summary.incidents,
        summary.alerts,
        summary.notifications,
        summary.breaches,
        summary.postmortems,
        summary.action_items,
    );
    println!();
    let url = std::env::var("HELIOGRAPH_BASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| {
            std::env::var("HELIOGRAPH_BIND")
                .ok()
                .map(|b| format!("http://{b}"))
        })
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    println!("Start the server with `heliograph serve`, then sign in at {url}");
    println!(
        "as {} with password {}",
        summary.admin_email, summary.admin_password
    );
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM, so requests in flight can finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Hides a password in a database URL before printing it.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
