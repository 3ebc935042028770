//! The connection to the control plane and the CLI's error type.
//!
//! Owns: the `Credential` newtype (a management key or a session token); the gRPC channel
//! and the interceptor that adds `authorization: Bearer <credential>` to every call (none for
//! the calls that need no credentials); the per-call timeout; and `exit_code`, the single
//! mapping from a gRPC status code to a process exit code. Must not: resolve the
//! configuration (`config` does), build requests or render output (resource modules and
//! `output` do), or ever print a credential.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use keygate_proto::v1::audit_service_client::AuditServiceClient;
use keygate_proto::v1::auth_service_client::AuthServiceClient;
use keygate_proto::v1::invitation_service_client::InvitationServiceClient;
use keygate_proto::v1::route_service_client::RouteServiceClient;
use keygate_proto::v1::service_account_service_client::ServiceAccountServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use keygate_proto::v1::user_service_client::UserServiceClient;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::config::Config;
use crate::secret::Secret;

/// Metadata key of the id the control plane gives every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Exit code of a usage error (clap uses the same).
pub const EXIT_USAGE: u8 = 2;

/// The process exit code for a failed call with this gRPC status code.
///
/// This is the one mapping; `args::EXIT_CODES_HELP` documents it for `--help` and a test
/// checks that the two agree.
pub fn exit_code(code: Code) -> u8 {
    match code {
        Code::Unauthenticated | Code::PermissionDenied => 3,
        Code::NotFound => 4,
        Code::InvalidArgument
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::OutOfRange => 5,
        Code::Unavailable | Code::DeadlineExceeded => 6,
        Code::ResourceExhausted => 7,
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::Aborted
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss => 1,
    }
}

/// Everything that can make a `keygate` invocation fail. `Display` is the message after
/// `error: `; `exit_code` is the process exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The control plane answered with an error status. When it refused several fields
    /// (`google.rpc.BadRequest`), each is listed on its own line after the message.
    #[error(
        "{message} (code: {code:?}, request id: {request_id}){}",
        violation_lines(violations)
    )]
    Rpc {
        code: Code,
        message: String,
        request_id: String,
        /// `<field>: <rule>` for every field the server refused (empty when it named none).
        violations: Vec<String>,
    },
    /// No answer: connection refused, DNS failure, timeout.
    #[error("cannot reach control plane at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The command line or its inputs (key, secret sources, confirmation) are not usable.
    #[error("{0}")]
    Usage(String),
    /// Reading a local file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// The command ran but its outcome is a failure, e.g. a broken audit chain.
    #[error("{0}")]
    Failed(String),
    /// `import old-system` found problems no `--resolve` covers; nothing was written.
    #[error("{0}")]
    Refused(String),
}

/// The refused fields, one per line, when there are more than the message shows.
fn violation_lines(violations: &[String]) -> String {
    if violations.len() < 2 {
        return String::new();
    }
    violations.iter().map(|v| format!("\n  - {v}")).collect()
}

/// Every field violation of a status's `google.rpc.BadRequest`, as `<field>: <rule>`.
fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Rpc { code, .. } => exit_code(*code),
            CliError::Unreachable { .. } => exit_code(Code::Unavailable),
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Refused(_) => 5,
            CliError::Io { .. } | CliError::Output(_) | CliError::Failed(_) => 1,
        }
    }

    /// True when stdout was closed early (`keygate ... | head`): not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            context: context.into(),
            source,
        }
    }

    /// A response field that the API always sets was missing.
    pub(crate) fn missing(field: &str) -> Self {
        CliError::Failed(format!(
            "malformed response from control plane: no `{field}`"
        ))
    }
}

/// A bearer credential: a management key (`kgm_...`) or a session token (`kgs_...`). Its
/// `Debug` never shows the value.
#[derive(Clone)]
pub struct Credential(Secret);

impl Credential {
    /// Wraps a credential, trimming surrounding whitespace (a key file usually ends in a
    /// newline).
    pub fn new(raw: &str) -> Self {
        Credential(Secret::new(raw.trim()))
    }

    /// The credential itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// Checks that the credential can be sent; `what` names it in the error (e.g. "the
    /// management key from --key"), which never contains the value.
    pub fn check(&self, what: &str) -> Result<(), CliError> {
        self.bearer_value(what).map(drop)
    }

    /// The `authorization` metadata value, marked sensitive.
    fn bearer_value(&self, what: &str) -> Result<MetadataValue<Ascii>, CliError> {
        if self.0.is_empty() {
            return Err(CliError::usage(format!("{what} is empty")));
        }
        let mut value =
            MetadataValue::try_from(format!("Bearer {}", self.expose())).map_err(|_| {
                CliError::usage(format!(
                    "{what} contains characters not allowed in a header"
                ))
            })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// Adds `authorization: Bearer <credential>` to every request, or nothing for the calls
/// that need no credentials (SignIn, CompleteSetup, AcceptInvitation).
#[derive(Clone)]
pub struct AuthInterceptor {
    value: Option<MetadataValue<Ascii>>,
}

impl Interceptor for AuthInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.value {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The channel type every generated client runs on.
pub type AuthedChannel = InterceptedService<Channel, AuthInterceptor>;

/// An open connection to the control plane, handing out typed clients.
pub struct Connection {
    channel: Channel,
    auth: AuthInterceptor,
    addr: String,
    timeout: Duration,
}

impl Connection {
    /// Connects (HTTP/2, no TLS) with the configured credential, giving up after the
    /// configured timeout.
    pub async fn connect(config: &Config) -> Result<Self, CliError> {
        let credential = config.require_credential()?;
        Self::open(&config.addr, config.timeout, Some(credential)).await
    }

    /// Connects without a credential, for SignIn, CompleteSetup and AcceptInvitation.
    pub async fn connect_anonymous(config: &Config) -> Result<Self, CliError> {
        Self::open(&config.addr, config.timeout, None).await
    }

    /// Connects to `addr`, sending `credential` (if any) with every call.
    pub async fn open(
        addr: &str,
        timeout: Duration,
        credential: Option<&Credential>,
    ) -> Result<Self, CliError> {
        let auth = AuthInterceptor {
            value: credential
                .map(|c| c.bearer_value("the credential"))
                .transpose()?,
        };
        let endpoint = Endpoint::from_shared(addr.to_owned())
            .map_err(|e| CliError::usage(format!("--addr {addr}: {e}")))?
            .connect_timeout(timeout)
            .user_agent(concat!("keygate-cli/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| CliError::Failed(e.to_string()))?;
        let unreachable = |reason: String| CliError::Unreachable {
            addr: addr.to_owned(),
            reason,
        };
        let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => return Err(unreachable(error_chain(&e))),
            Err(_) => return Err(unreachable(timeout_reason(timeout))),
        };
        Ok(Connection {
            channel,
            auth,
            addr: addr.to_owned(),
            timeout,
        })
    }

    pub fn tokens(&self) -> TokenServiceClient<AuthedChannel> {
        TokenServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn routes(&self) -> RouteServiceClient<AuthedChannel> {
        RouteServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn teams(&self) -> TeamServiceClient<AuthedChannel> {
        TeamServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn system(
        &self,
    ) -> keygate_proto::v1::system_service_client::SystemServiceClient<AuthedChannel> {
        keygate_proto::v1::system_service_client::SystemServiceClient::with_interceptor(
            self.channel.clone(),
            self.auth.clone(),
        )
    }

    pub fn sync(&self) -> keygate_proto::v1::sync_service_client::SyncServiceClient<AuthedChannel> {
        keygate_proto::v1::sync_service_client::SyncServiceClient::with_interceptor(
            self.channel.clone(),
            self.auth.clone(),
        )
    }

    pub fn usage(
        &self,
    ) -> keygate_proto::v1::usage_service_client::UsageServiceClient<AuthedChannel> {
        keygate_proto::v1::usage_service_client::UsageServiceClient::with_interceptor(
            self.channel.clone(),
            self.auth.clone(),
        )
    }

    pub fn alerts(
        &self,
    ) -> keygate_proto::v1::alert_service_client::AlertServiceClient<AuthedChannel> {
        keygate_proto::v1::alert_service_client::AlertServiceClient::with_interceptor(
            self.channel.clone(),
            self.auth.clone(),
        )
    }

    pub fn dashboard(
        &self,
    ) -> keygate_proto::v1::dashboard_service_client::DashboardServiceClient<AuthedChannel> {
        keygate_proto::v1::dashboard_service_client::DashboardServiceClient::with_interceptor(
            self.channel.clone(),
            self.auth.clone(),
        )
    }

    pub fn audit(&self) -> AuditServiceClient<AuthedChannel> {
        AuditServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn auth(&self) -> AuthServiceClient<AuthedChannel> {
        AuthServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn users(&self) -> UserServiceClient<AuthedChannel> {
        UserServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn invitations(&self) -> InvitationServiceClient<AuthedChannel> {
        InvitationServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn service_accounts(&self) -> ServiceAccountServiceClient<AuthedChannel> {
        ServiceAccountServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// Awaits one call under the timeout and maps its error.
    pub async fn call<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CliError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.status_error(status)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Awaits the start of a server-streaming call under the timeout, keeping the request id
    /// of its response headers.
    pub async fn open_stream<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>>,
    ) -> Result<ServerStream<T>, CliError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(ServerStream {
                request_id: request_id(response.metadata()),
                messages: response.into_inner(),
            }),
            Ok(Err(status)) => Err(self.status_error(status)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Reads the next message of a server stream; the timeout applies to each message.
    pub async fn next<T>(&self, stream: &mut ServerStream<T>) -> Result<Option<T>, CliError> {
        match tokio::time::timeout(self.timeout, stream.messages.message()).await {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(status)) => Err(status_error_in(
                &self.addr,
                status,
                stream.request_id.as_deref(),
            )),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Reads the next message of a server stream that may be quiet for any length of time
    /// (a live tail): no timeout.
    pub async fn next_untimed<T>(
        &self,
        stream: &mut ServerStream<T>,
    ) -> Result<Option<T>, CliError> {
        stream
            .messages
            .message()
            .await
            .map_err(|status| status_error_in(&self.addr, status, stream.request_id.as_deref()))
    }

    fn timed_out(&self) -> CliError {
        CliError::Unreachable {
            addr: self.addr.clone(),
            reason: timeout_reason(self.timeout),
        }
    }

    fn status_error(&self, status: tonic::Status) -> CliError {
        status_error(&self.addr, status)
    }
}

/// A server stream and the request id of its response headers, for an error that arrives
/// mid-stream in trailers that do not repeat it.
pub struct ServerStream<T> {
    messages: tonic::Streaming<T>,
    request_id: Option<String>,
}

fn timeout_reason(timeout: Duration) -> String {
    format!("no answer within {}s", timeout.as_secs())
}

/// Turns a failed call into a `CliError`. A status without a request id and with code
/// Unavailable never reached the control plane: it is the client's own transport failure.
pub fn status_error(addr: &str, status: tonic::Status) -> CliError {
    status_error_in(addr, status, None)
}

/// `status_error` for a call whose response headers already carried `call_request_id`.
fn status_error_in(addr: &str, status: tonic::Status, call_request_id: Option<&str>) -> CliError {
    match request_id(status.metadata()) {
        None if status.code() == Code::Unavailable => CliError::Unreachable {
            addr: addr.to_owned(),
            reason: error_chain(&status),
        },
        request_id => {
            let request_id = request_id.or_else(|| call_request_id.map(str::to_owned));
            let message = if status.message().is_empty() {
                status.code().description().to_owned()
            } else {
                status.message().to_owned()
            };
            CliError::Rpc {
                code: status.code(),
                message,
                request_id: request_id.unwrap_or_else(|| "none".to_owned()),
                violations: violations(&status),
            }
        }
    }
}

fn request_id(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    metadata
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An error and its sources, joined with `: `, skipping repeats and tonic's bare
/// "transport error" wrapper.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = match e.downcast_ref::<tonic::Status>() {
            Some(status) => status.message().to_owned(),
            None => e.to_string(),
        };
        let redundant = text.is_empty()
            || text == "transport error"
            || parts.last().is_some_and(|last| last.contains(&text));
        if !redundant {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        "connection failed".to_owned()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::EXIT_CODES_HELP;

    const ALL_CODES: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    #[test]
    fn exit_codes_by_status_code() {
        let cases = [
            (Code::Unauthenticated, 3),
            (Code::PermissionDenied, 3),
            (Code::NotFound, 4),
            (Code::InvalidArgument, 5),
            (Code::AlreadyExists, 5),
            (Code::FailedPrecondition, 5),
            (Code::OutOfRange, 5),
            (Code::Unavailable, 6),
            (Code::DeadlineExceeded, 6),
            (Code::Internal, 1),
            (Code::Unknown, 1),
            (Code::Unimplemented, 1),
            (Code::ResourceExhausted, 7),
            (Code::Ok, 1),
        ];
        for (code, want) in cases {
            assert_eq!(exit_code(code), want, "{code:?}");
        }
    }

    /// Every status code appears on the `--help` line of the exit code it maps to.
    #[test]
    fn help_text_matches_the_mapping() {
        let line_of = |exit: u8| -> String {
            let mut lines = EXIT_CODES_HELP
                .lines()
                .skip_while(|l| !l.trim_start().starts_with(&format!("{exit} ")));
            let mut text = lines.next().expect("a line per exit code").to_owned();
            // Continuation lines are indented deeper than the code column.
            for more in lines.take_while(|l| l.starts_with("     ")) {
                text.push_str(more);
            }
            text
        };
        for code in ALL_CODES.into_iter().filter(|c| *c != Code::Ok) {
            let name = format!("{code:?}");
            assert!(
                line_of(exit_code(code)).contains(&name),
                "{name} should be documented under exit code {}",
                exit_code(code)
            );
        }
    }

    #[test]
    fn rate_limited_sign_in_exits_7() {
        let err = status_error(
            "http://cp:7000",
            tonic::Status::resource_exhausted("too many sign-in attempts"),
        );
        assert_eq!(err.exit_code(), 7);
        assert!(EXIT_CODES_HELP.contains("7  ResourceExhausted: rate limited"));
    }

    #[test]
    fn credentials_are_redacted() {
        let credential = Credential::new(" kgs_session_secret\n");
        assert_eq!(credential.expose(), "kgs_session_secret");
        assert_eq!(format!("{credential:?}"), "Credential(<redacted>)");
        let err = Credential::new("kgs_\u{7f}session_secret")
            .check("the session token")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the session token contains characters not allowed in a header"
        );
    }

    #[test]
    fn error_exit_codes() {
        assert_eq!(CliError::usage("x").exit_code(), 2);
        let unreachable = CliError::Unreachable {
            addr: "a".into(),
            reason: "b".into(),
        };
        assert_eq!(unreachable.exit_code(), 6);
        assert_eq!(CliError::Failed("x".into()).exit_code(), 1);
        let pipe = CliError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
        assert_eq!(pipe.exit_code(), 1);
    }

    #[test]
    fn rpc_error_message_has_code_and_request_id() {
        let mut status = tonic::Status::not_found("token tok_1 not found");
        status
            .metadata_mut()
            .insert(REQUEST_ID_HEADER, "req-42".parse().unwrap());
        let err = status_error("http://cp:7000", status);
        assert_eq!(err.exit_code(), 4);
        assert_eq!(
            err.to_string(),
            "token tok_1 not found (code: NotFound, request id: req-42)"
        );
    }

    #[test]
    fn every_refused_field_is_listed() {
        use tonic_types::{ErrorDetails, StatusExt};
        let mut details = ErrorDetails::new();
        details
            .add_bad_request_violation("name", "is required")
            .add_bad_request_violation("scopes[0]", "is not a scope");
        let mut status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "name: is required (and 1 more)",
            details,
        );
        status
            .metadata_mut()
            .insert(REQUEST_ID_HEADER, "r9".parse().unwrap());
        let err = status_error("a", status);
        assert_eq!(
            err.to_string(),
            "name: is required (and 1 more) (code: InvalidArgument, request id: r9)\n  \
             - name: is required\n  - scopes[0]: is not a scope"
        );
        // One violation: the message already says it all.
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("name", "is required");
        let status =
            tonic::Status::with_error_details(Code::InvalidArgument, "name: is required", details);
        assert_eq!(
            status_error("a", status).to_string(),
            "name: is required (code: InvalidArgument, request id: none)"
        );
    }

    #[test]
    fn mid_stream_errors_use_the_call_request_id() {
        let err = status_error_in("a", tonic::Status::internal("broke"), Some("req-7"));
        assert_eq!(err.to_string(), "broke (code: Internal, request id: req-7)");
        let err = status_error("a", tonic::Status::internal("broke"));
        assert_eq!(err.to_string(), "broke (code: Internal, request id: none)");
    }

    #[test]
    fn unavailable_without_request_id_is_unreachable() {
        let err = status_error(
            "http://cp:7000",
            tonic::Status::unavailable("tcp connect error"),
        );
        assert_eq!(
            err.to_string(),
            "cannot reach control plane at http://cp:7000: tcp connect error"
        );
        assert_eq!(err.exit_code(), 6);

        // From the server itself (it has a request id): a normal RPC error, still exit 6.
        let mut status = tonic::Status::unavailable("database down");
        status
            .metadata_mut()
            .insert(REQUEST_ID_HEADER, "r1".parse().unwrap());
        let err = status_error("http://cp:7000", status);
        assert!(matches!(err, CliError::Rpc { .. }));
        assert_eq!(err.exit_code(), 6);
    }

    #[tokio::test]
    async fn connection_refused_is_unreachable() {
        // Bind then drop a listener to get a local port that refuses connections.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = format!("http://127.0.0.1:{port}");
        let key = Credential::new("k");
        let Err(err) = Connection::open(&addr, Duration::from_secs(30), Some(&key)).await else {
            panic!("connected to a closed port")
        };
        assert_eq!(err.exit_code(), 6);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot reach control plane at {addr}: ")),
            "{text}"
        );
    }
}
