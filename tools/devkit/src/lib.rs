//! Local development support shared by the local runner, canopy-sim and the integration tests:
//! an AWS configuration pointed at the local emulator, the resources template.yaml creates
//! (created here the same way), sample events and their signing.

pub mod aws_limits;
pub mod events;
pub mod jwt;
pub mod receiver;
pub mod resources;
pub mod sqs_driver;

/// The documented local webhook signing secret. Never use it in a deployed stack.
pub const LOCAL_SIGNING_SECRET: &str = "whsec_canopy_monitor_local_only";

/// The documented local signing secret of the second (sandbox) source. Never deploy it.
pub const LOCAL_SANDBOX_SIGNING_SECRET: &str = "whsec_canopy_monitor_local_sandbox";

/// Timeouts for talking to the local emulator. moto answers in milliseconds when idle but, with
/// its DynamoDB requests taken one at a time (scripts/moto_serial_dynamodb.py) and a parallel
/// test suite or a build beside it, a request can wait seconds for its turn: the production
/// budgets (`canopy_monitor::app::budget`) would retry requests whose first attempt went through.
pub fn emulator_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .operation_attempt_timeout(std::time::Duration::from_secs(30))
        .operation_timeout(std::time::Duration::from_secs(60))
        .build()
}

/// An AWS SDK configuration for a local emulator at `endpoint` (moto): dummy credentials,
/// a fixed region, the endpoint for every service, [`emulator_timeouts`], and the HTTP client
/// behind [`aws_limits::LimitsClient`], so every client built from it is refused what AWS
/// would refuse (moto enforces few of AWS's limits).
pub fn local_aws_config(endpoint: &str) -> aws_config::SdkConfig {
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "local");
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .timeout_config(emulator_timeouts())
        .http_client(aws_limits::LimitsClient::wrap(
            canopy_monitor::adapters::aws::http_client(),
        ))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            credentials,
        ))
        .build()
}
