"""The backoff every connector's retry loop waits with (Kinesis reads, PutEvents, PutRecords, PutMetricData),
and which botocore errors the delivery loops do not retry (`is_permanent_sdk_error`)."""
from __future__ import annotations

import random


def equal_jitter_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Equal-jitter exponential backoff: attempt n (from 0) waits in [d/2, d], d = min(cap, base * 2**n).

    Equal jitter (not full jitter) keeps a floor under every wait, so a bounded number of
    attempts spans a predictable minimum time.

    >>> rng = random.Random(1)
    >>> [0.05 <= equal_jitter_delay(0, 0.1, 5.0, rng) <= 0.1, 2.5 <= equal_jitter_delay(12, 0.1, 5.0, rng) <= 5.0]
    [True, True]
    """
    ceiling = min(cap_s, base_s * 2 ** min(attempt, 30))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


# botocore errors that no retry can fix: the request is refused before it is sent (parameters,
# missing or partial credentials, region, endpoint, profile or client configuration), so it would be
# refused the same way on every attempt. Names, not classes: this module stays free of the AWS SDK
# at import time (connectors/batching.py says why), and a name this botocore lacks is skipped.
# A failure to *fetch* credentials (CredentialRetrievalError, TokenRetrievalError,
# MetadataRetrievalError: the container or instance metadata endpoint did not answer in time) is
# not one of them: it can pass, so it is retried like a network error.
PERMANENT_SDK_ERROR_NAMES = (
    # the request itself
    "ParamValidationError", "ValidationError", "MissingParametersError", "UnknownClientMethodError",
    "InvalidHostLabelError", "UnseekableStreamError",
    # credentials and tokens that are missing or incomplete (the client never looks for them again)
    "NoCredentialsError", "PartialCredentialsError", "NoAuthTokenError", "UnknownCredentialError",
    "UnknownTokenProviderError", "RefreshWithMFAUnsupportedError", "SSOError", "LoginError",
    # region, endpoint, service model
    "NoRegionError", "UnknownRegionError", "BaseEndpointResolverError", "EndpointProviderError",
    "InvalidEndpointConfigurationError", "ServiceNotInRegionError", "DataNotFoundError",
    "ApiVersionNotFoundError", "UnknownServiceStyle", "UnsupportedServiceProtocolsError",
    "UnknownSignatureVersionError", "UnsupportedSignatureVersionError",
    # profile and client configuration
    "ProfileNotFound", "ConfigParseError", "ConfigNotFound", "InvalidConfigError",
    "InvalidRetryConfigurationError", "InvalidProxiesConfigError", "InvalidDefaultsMode",
    "InvalidChecksumConfigError", "InvalidEndpointDiscoveryConfigurationError", "InvalidIMDSEndpointError",
    "InvalidIMDSEndpointModeError", "MissingDependencyException", "MD5UnavailableError",
    # botocore's Stubber (tests): an unexpected call is a mistake, not an outage
    "StubResponseError",
)
_permanent_sdk_errors: tuple[type, ...] | None = None


def is_permanent_sdk_error(exc: BaseException) -> bool:
    """True for a botocore error that retrying cannot fix (a configuration error:
    `PERMANENT_SDK_ERROR_NAMES` and their subclasses).

    The connectors' delivery loops (PutEvents, PutMetricData, the dead letters' PutRecords) take every other
    `botocore.exceptions.BotoCoreError` as a transient delivery failure: a connection refused,
    reset or closed without an answer (ConnectionClosedError), a timeout, a proxy or TLS failure, a
    response cut short. Their clients are built with max_attempts=1, so botocore retries none of
    them. A permanent error ends the loop at once, and its entries go where exhausted retries send
    them (a DELIVERY_FAILED dead letter, the dead-letter fallback file), with the error as reason.

    >>> from botocore.exceptions import ConnectionClosedError, NoCredentialsError
    >>> is_permanent_sdk_error(NoCredentialsError()), is_permanent_sdk_error(ConnectionClosedError(endpoint_url="u"))
    (True, False)
    """
    global _permanent_sdk_errors
    if _permanent_sdk_errors is None:
        from botocore import exceptions

        _permanent_sdk_errors = tuple(getattr(exceptions, name) for name in PERMANENT_SDK_ERROR_NAMES
                                      if isinstance(getattr(exceptions, name, None), type))
    return isinstance(exc, _permanent_sdk_errors)
