//! TLS to PostgreSQL with libpq's `sslmode` meanings: `require` against the
//! shared local cluster (Debian's runs with `ssl=on` and a snakeoil
//! certificate), and `verify-ca` / `verify-full` against a throwaway cluster
//! with a CA and server certificate made here.

use entra_sync_store::Store;
use entra_sync_store::testing::test_database_url;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the session runs over TLS, per the server.
async fn session_uses_tls(store: &Store) -> Result<bool, String> {
    let conn = store.conn().await.map_err(|e| format!("{e:#?}"))?;
    let row = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate_as_libpq() {
    let url = test_database_url();
    let plain = Store::connect(&with_params(&url, "sslmode=disable"), 1, None).unwrap();
    let conn = plain.conn().await.expect("the local cluster answers");
    let ssl: String = conn.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    drop(conn);
    assert_eq!(
        ssl, "on",
        "the local cluster must run with ssl=on (Debian's default) for this test"
    );
    assert!(!session_uses_tls(&plain).await.unwrap());

    // The snakeoil certificate is self-signed: only a mode that does not check it connects.
    let required = Store::connect(&with_params(&url, "sslmode=require"), 1, None).unwrap();
    assert!(session_uses_tls(&required).await.unwrap());
    let preferred = Store::connect(&url, 1, None).unwrap();
    assert!(
        session_uses_tls(&preferred).await.unwrap(),
        "prefer (the default) uses TLS when offered"
    );
    let checked = Store::connect(&with_params(&url, "sslmode=verify-full"), 1, None).unwrap();
    let error = session_uses_tls(&checked).await.unwrap_err();
    assert!(error.contains("InvalidCertificate"), "{error}");
}

/// A CA and a server certificate for `localhost` signed by it, as PEM files.
struct Certificates {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: String,
    server_key: String,
}

fn make_certificates(dir: &Path) -> Certificates {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "entra-sync test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other = other_params.self_signed(&other_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
    Certificates {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
    }
}

/// A PostgreSQL cluster of its own on a free port, with TLS only; stopped on drop.
struct Cluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl Cluster {
    fn start(dir: &Path, certs: &Certificates) -> Self {
        let bin = postgres_bin();
        let data = dir.join("data");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if is_root() {
            run("chown", &["-R", "postgres:postgres", dir.to_str().unwrap()]);
        }
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        );
        std::fs::write(data.join("server.crt"), &certs.server_cert).unwrap();
        std::fs::write(data.join("server.key"), &certs.server_key).unwrap();
        set_mode(&data.join("server.key"), 0o600);
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            dir.display()
        );
        append(&data.join("postgresql.conf"), &conf);
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        if is_root() {
            run("chown", &["-R", "postgres:postgres", dir.to_str().unwrap()]);
        }
        let log = dir.join("postgres.log");
        as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        Self {
            dir: dir.to_owned(),
            port,
            bin,
        }
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{params}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries in /usr/lib/postgresql (scripts/ensure-services)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().unwrap().stdout == b"0\n"
}

/// Runs a server binary, as the postgres user when we are root (initdb refuses root).
fn as_postgres(program: &Path, args: &[&str]) {
    let program = program.to_str().unwrap();
    if is_root() {
        let mut all = vec!["-u", "postgres", "--", program];
        all.extend_from_slice(args);
        run("runuser", &all);
    } else {
        run(program, args);
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

async fn connects(url: &str) -> Result<bool, String> {
    let store = Store::connect(url, 1, None).map_err(|e| e.to_string())?;
    session_uses_tls(&store).await
}

#[tokio::test]
async fn verify_full_checks_the_chain_and_the_host_name() {
    let dir =
        std::env::temp_dir().join(format!("entra-sync-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o755);
    let certs = make_certificates(&dir);
    let cluster = Cluster::start(&dir, &certs);
    let ca = certs.ca.display().to_string();
    let other = certs.other_ca.display().to_string();

    // The certificate names localhost and chains to our CA.
    let full = format!("sslmode=verify-full&sslrootcert={ca}");
    assert_eq!(connects(&cluster.url("localhost", &full)).await, Ok(true));

    // Reached as 127.0.0.1, the name does not match: verify-full refuses, verify-ca does not.
    let error = connects(&cluster.url("127.0.0.1", &full))
        .await
        .unwrap_err();
    assert!(error.contains("NotValidForName"), "{error}");
    let ca_only = format!("sslmode=verify-ca&sslrootcert={ca}");
    assert_eq!(
        connects(&cluster.url("127.0.0.1", &ca_only)).await,
        Ok(true)
    );

    // A CA that did not sign it: refused by every checking mode, require with a root included (libpq).
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = cluster.url("localhost", &format!("sslmode={mode}&sslrootcert={other}"));
        let error = connects(&url).await.unwrap_err();
        assert!(error.contains("UnknownIssuer"), "{mode}: {error}");
    }
    // Plain require checks nothing, as libpq; the server accepts only TLS.
    assert_eq!(
        connects(&cluster.url("127.0.0.1", "sslmode=require")).await,
        Ok(true)
    );
    let error = connects(&cluster.url("127.0.0.1", "sslmode=disable"))
        .await
        .unwrap_err();
    assert!(error.contains("no encryption"), "{error}");
    drop(cluster);
}
