// Package rpc builds Parley's gRPC servers and clients with the same
// behaviour everywhere: request ids, panic recovery, call logging,
// authentication and protovalidate request validation on the server;
// request-id propagation, keepalive and round-robin balancing on the
// client.
//
// Server interceptor order (outermost first), for unary and streaming
// calls alike:
//
//  1. request id: from the incoming "x-request-id" metadata or new; put in
//     the context (see platform/logging) and echoed in the response header
//  2. recovery: a panic becomes codes.Internal with a generic message; the
//     panic and its stack are logged, never sent to the client
//  3. logging: method, code and duration of every call
//  4. auth: the AuthFunc hook (skipped for the gRPC health service, which
//     probes call without credentials)
//  5. validation: protovalidate rules of the request messages; violations
//     come back as codes.InvalidArgument carrying both a buf.validate
//     Violations detail and an errdetails.BadRequest (see FieldViolations)
package rpc
