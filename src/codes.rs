//! Status tables: gRPC code names as grpcurl prints them, and the mappings
//! between HTTP statuses and gRPC codes that gRPC clients and gateways use,
//! so an injected failure means the same thing over either protocol.

/// gRPC code names by number, as grpcurl prints them.
pub const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a gRPC code, e.g. `UNAVAILABLE` for 14.
pub fn grpc_code_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| GRPC_CODES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// The gRPC code a client derives from an HTTP status (gRPC's
/// http-grpc-status-mapping).
pub fn grpc_code_for_http(status: u16) -> i32 {
    match status {
        200..=299 => 0,
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// The HTTP status that stands for a gRPC code (as gateways map them).
pub fn http_status_for_grpc(code: i32) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}
